"""Importers that turn released dataset files into manifests of :class:`Sample`.

- :func:`import_emer_fine`: the 332 EMER-Fine samples (gold descriptions
  ``final-EMER-reason.csv``, subtitles ``subtitles.csv``, gold labels
  ``check-openset.csv``); the MER videos are under an academic EULA and are looked up
  in a local folder when you have them.
- :func:`import_video_folder`: any folder of videos plus an optional MER2024-layout
  subtitle CSV (``name,chinese,english``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from affectgpt.data.manifest import ManifestError, Sample
from affectgpt.eval.labels import check_sample_name, read_labels, read_table
from affectgpt.paths import join_inside

if TYPE_CHECKING:  # pragma: no cover
    from affectgpt.media import MediaLimits

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".flv", ".mpg", ".mpeg", ".m4v")


def _text_table(path: str | Path, what: str) -> dict[str, tuple[str, str]]:
    """``{name: (chinese, english)}`` from a ``name,chinese,english`` table."""
    path = Path(path)
    rows = read_table(path)
    result: dict[str, tuple[str, str]] = {}
    for lineno, row in enumerate(rows, 2):
        missing = [c for c in ("name", "chinese", "english") if c not in row]
        if missing:
            raise ManifestError(f"{what} file lacks column(s) {missing}; expected "
                                f"name,chinese,english (columns: {sorted(row)})", path=path)
        name = str(row["name"] or "").strip()
        if not name:
            raise ManifestError("empty sample name", line=lineno, path=path)
        check_sample_name(name, path=path, line=lineno)
        if name in result:
            raise ManifestError("duplicate sample name", line=lineno, sample=name, path=path)
        result[name] = (str(row["chinese"] or "").strip(), str(row["english"] or "").strip())
    return result


def find_video(video_dir: str | Path, name: str,
               extensions: tuple[str, ...] = VIDEO_EXTENSIONS) -> str | None:
    """The video of ``name`` in ``video_dir`` (first extension that exists), or None.

    Raises :class:`~affectgpt.paths.UnsafeNameError` for a name that would leave the folder.
    """
    video_dir = Path(video_dir)
    for ext in extensions:
        for candidate in (join_inside(video_dir, f"{name}{ext}", what="video file name"),
                          join_inside(video_dir, f"{name}{ext.upper()}", what="video file name")):
            if candidate.is_file():
                return str(candidate.resolve())
    return None


def _gate_videos(videos: dict[str, Path], limits: MediaLimits | None) -> dict[str, Path]:
    """The videos the media gate accepts; each refused one is logged with its reason."""
    from affectgpt.media import MediaError, check_media

    kept: dict[str, Path] = {}
    refused = 0
    for name, path in videos.items():
        try:
            check_media(path, limits)
        except (MediaError, OSError) as exc:
            refused += 1
            logger.warning("left out %s: %s", path, exc)
            continue
        kept[name] = path
    if refused:
        logger.warning("%d of %d video(s) refused by the media gate and left out of the "
                       "manifest", refused, len(videos))
    return kept


def import_emer_fine(
    reason_csv: str | Path,
    labels_csv: str | Path,
    subtitles_csv: str | Path | None = None,
    video_dir: str | Path | None = None,
    *,
    labels_column: str = "openset",
    label_syntax: str = "python",
    source: str = "emer-fine",
) -> list[Sample]:
    """Build EMER-Fine samples from the released CSV files.

    Args:
        reason_csv: ``final-EMER-reason.csv`` (``name,chinese,english`` gold descriptions);
            its rows define the samples and their order.
        labels_csv: gold labels (``mer2024-ov/check-openset.csv``, column ``openset``).
        subtitles_csv: optional ``subtitles.csv`` (``name,chinese,english``).
        video_dir: optional folder holding ``<name>.mp4`` / ``.avi`` / ...; samples whose
            video is absent get ``video=None`` and are counted in a warning.
        labels_column / label_syntax: where and how to read the label lists.
        source: value of ``Sample.source``.

    Raises:
        ManifestError: when a sample lacks gold labels or a subtitle, or a file is malformed.
    """
    descriptions = _text_table(reason_csv, "description")
    labels = read_labels(labels_csv, labels_column, syntax=label_syntax)
    missing = [n for n in descriptions if n not in labels]
    if missing:
        raise ManifestError(f"{len(missing)} sample(s) have no gold labels, e.g. {missing[:3]}",
                            sample=missing[0], path=labels_csv)
    unused = len(set(labels) - set(descriptions))
    if unused:
        logger.warning("%d label rows of %s have no description and are ignored", unused,
                       labels_csv)
    subtitles: dict[str, tuple[str, str]] = {}
    if subtitles_csv is not None:
        subtitles = _text_table(subtitles_csv, "subtitle")
        missing = [n for n in descriptions if n not in subtitles]
        if missing:
            raise ManifestError(f"{len(missing)} sample(s) have no subtitle, e.g. {missing[:3]}",
                                sample=missing[0], path=subtitles_csv)
    if video_dir is not None and not Path(video_dir).is_dir():
        raise FileNotFoundError(f"video folder not found: {video_dir}")
    samples = []
    for name, (desc_zh, desc_en) in descriptions.items():
        sub_zh, sub_en = subtitles.get(name, ("", ""))
        video = find_video(video_dir, name) if video_dir is not None else None
        samples.append(Sample(name=name, video=video, subtitle_en=sub_en, subtitle_zh=sub_zh,
                              description_en=desc_en, description_zh=desc_zh,
                              labels=list(labels[name]), source=source,
                              subtitle_source="given" if sub_zh or sub_en else ""))
    if video_dir is not None:
        absent = sum(s.video is None for s in samples)
        if absent:
            logger.warning("%d of %d EMER-Fine samples have no video in %s", absent,
                           len(samples), video_dir)
    return samples


def import_video_folder(
    video_dir: str | Path,
    subtitle_csv: str | Path | None = None,
    *,
    recursive: bool = False,
    extensions: tuple[str, ...] = VIDEO_EXTENSIONS,
    source: str | None = None,
    check_media: bool = True,
    limits: MediaLimits | None = None,
) -> list[Sample]:
    """Samples for every video in a folder, named by file stem, sorted by name.

    Args:
        video_dir: folder of videos (``recursive=True`` also searches subfolders).
        subtitle_csv: optional MER2024-layout subtitle table ``name,chinese,english``.
            Videos without a subtitle row get empty subtitles; subtitle rows without a
            video are ignored; both are counted in a warning.
        extensions: accepted video suffixes (case-insensitive).
        source: value of ``Sample.source`` (default: the folder name).
        check_media: open every video through the media gate
            (:func:`affectgpt.media.check_media`: container header only, nothing decoded)
            and leave out, with a warning naming the file and the reason, those it refuses
            (unreadable, a playlist, a format not accepted, over ``limits``).
        limits: the gate's limits (default: :func:`affectgpt.media.default_limits`).

    Raises:
        ManifestError: when two videos share a stem (``a.mp4`` and ``a.avi``).
        UnsafeSampleNameError: a file stem that cannot name a sample (a control character).
    """
    video_dir = Path(video_dir)
    if not video_dir.is_dir():
        raise FileNotFoundError(f"video folder not found: {video_dir}")
    exts = {e.lower() for e in extensions}
    pattern = "**/*" if recursive else "*"
    videos: dict[str, Path] = {}
    for p in sorted(video_dir.glob(pattern)):
        if not (p.is_file() and p.suffix.lower() in exts) or p.name.startswith("."):
            continue
        if p.stem in videos:
            raise ManifestError(f"two videos for one name: {videos[p.stem]} and {p}",
                                sample=p.stem, path=video_dir)
        check_sample_name(p.stem, path=p)
        videos[p.stem] = p.resolve()
    if check_media:
        videos = _gate_videos(videos, limits)
    subtitles = _text_table(subtitle_csv, "subtitle") if subtitle_csv is not None else {}
    source = source or video_dir.resolve().name
    samples = []
    for name in sorted(videos):
        sub_zh, sub_en = subtitles.get(name, ("", ""))
        samples.append(Sample(name=name, video=str(videos[name]), subtitle_en=sub_en,
                              subtitle_zh=sub_zh, source=source,
                              subtitle_source="given" if sub_zh or sub_en else ""))
    if subtitle_csv is not None:
        no_sub = sum(n not in subtitles for n in videos)
        no_video = sum(n not in videos for n in subtitles)
        if no_sub or no_video:
            logger.warning("%d video(s) without a subtitle row, %d subtitle row(s) without a "
                           "video (%s)", no_sub, no_video, subtitle_csv)
    return samples
