"""One schema for every dataset: a manifest of :class:`Sample` rows.

A manifest is a JSONL file (one JSON object per line) or a CSV file with the columns
``name, video, audio, subtitle_en, subtitle_zh, description_en, description_zh, labels,
split, source, extra, subtitle_source``. In CSV the labels are a bracketed list (``"['happy', 'joyful']"``)
and ``extra`` is a JSON object. Only ``name`` is required.

Media paths in a manifest are relative to the manifest's folder (or absolute); reading
resolves them to absolute paths and writing makes them relative again when the media lie
inside that folder, so a dataset folder can be moved or copied as a whole.

Example::

    samples = read_manifest("data/emer-fine/manifest.jsonl")
    write_manifest(samples, "data/emer-fine/manifest.csv")
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from affectgpt.eval.labels import (
    LabelFormatError,
    check_sample_name,
    format_label_list,
    parse_label_list,
    read_text,
)
from affectgpt.io import atomic_path

MANIFEST_SUFFIXES = (".jsonl", ".csv")
TEXT_FIELDS = ("subtitle_en", "subtitle_zh", "description_en", "description_zh")
MEDIA_FIELDS = ("video", "audio")
#: where a sample's subtitles came from: written by a person or importer, transcribed by
#: speech recognition (:func:`affectgpt.data.asr.transcribe_missing_subtitles`), or unknown
SUBTITLE_SOURCES = ("", "given", "asr")


@dataclass
class Sample:
    """One clip: its media, subtitles, gold descriptions and gold labels.

    Attributes:
        name: unique sample id (e.g. ``sample_00000000``).
        video: path of the video file (absolute once read from a manifest), or None.
        audio: path of a separate audio file, or None (audio is then the video's track).
        subtitle_en / subtitle_zh: the spoken words (English / Chinese).
        description_en / description_zh: gold EMER-style descriptions.
        labels: gold open-vocabulary labels (lower-case, de-duplicated).
        split: ``train`` / ``test`` / ... or None.
        source: where the sample came from (``emer-fine``, ``synthetic``, ...).
        extra: free-form JSON-serialisable data (e.g. synthetic generation parameters).
        subtitle_source: where the subtitles came from: ``"given"`` (the dataset or the
            user), ``"asr"`` (transcribed from the audio), or ``""`` (not recorded; older
            manifests).
    """

    name: str
    video: str | None = None
    audio: str | None = None
    subtitle_en: str = ""
    subtitle_zh: str = ""
    description_en: str = ""
    description_zh: str = ""
    labels: list[str] = field(default_factory=list)
    split: str | None = None
    source: str | None = None
    extra: dict = field(default_factory=dict)
    subtitle_source: str = ""


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Sample))


class ManifestError(LabelFormatError):
    """A manifest row that cannot be read; the message names the line, sample and file."""

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        sample: str | None = None,
        path: str | Path | None = None,
    ):
        super().__init__(f"line {line}: {message}" if line is not None else message,
                         sample=sample, path=path)
        self.line = line


# --------------------------------------------------------------------------- reading


def _manifest_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise ManifestError(
            f"unknown manifest format {suffix or '(no suffix)'!r}; use .jsonl or .csv", path=path
        )
    return suffix[1:]


def _jsonl_rows(text: str, path: Path) -> Iterator[tuple[int, dict]]:
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"not valid JSON ({exc.msg})", line=lineno, path=path) from None
        except RecursionError:
            raise ManifestError("JSON nested too deeply", line=lineno, path=path) from None
        if not isinstance(row, dict):
            raise ManifestError("expected a JSON object", line=lineno, path=path)
        yield lineno, row


def _csv_rows(text: str, path: Path) -> Iterator[tuple[int, dict]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        yield from _csv_records(reader, path)
    except csv.Error as exc:
        raise ManifestError(f"not valid CSV ({exc})", line=reader.line_num, path=path) from None


def _csv_records(reader, path: Path) -> Iterator[tuple[int, dict]]:
    try:
        header = next(reader)
    except StopIteration:
        raise ManifestError("empty file (no header row)", path=path) from None
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        raise ManifestError(f"duplicate column names in header {header}", line=1, path=path)
    start = reader.line_num + 1
    for values in reader:
        lineno, start = start, reader.line_num + 1
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            raise ManifestError(
                f"expected {len(header)} values, got {len(values)} (unquoted comma?)",
                line=lineno, path=path,
            )
        row: dict = dict(zip(header, values))
        if row.get("extra", "").strip():
            try:
                row["extra"] = json.loads(row["extra"])
            except (json.JSONDecodeError, RecursionError) as exc:
                raise ManifestError(f"'extra' is not JSON ({getattr(exc, 'msg', exc)})",
                                    line=lineno, sample=row.get("name") or None,
                                    path=path) from None
        else:
            row["extra"] = {}
        yield lineno, row


def _resolve_media(value: object, base: Path) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    p = Path(text).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def _row_to_sample(row: dict, *, lineno: int, path: Path, base: Path, strict: bool) -> Sample:
    name = row.get("name")
    if isinstance(name, (int, float)) and not isinstance(name, bool):
        name = str(name)
    if not isinstance(name, str) or not name.strip():
        raise ManifestError("missing or empty 'name'", line=lineno, path=path)
    name = check_sample_name(name.strip(), path=path, line=lineno)

    def fail(message: str) -> ManifestError:
        return ManifestError(message, line=lineno, sample=name, path=path)

    unknown = sorted(set(row) - set(FIELDS))
    extra = row.get("extra") or {}
    if not isinstance(extra, dict):
        raise fail(f"'extra' must be an object, got {type(extra).__name__}")
    if unknown:
        if strict:
            raise fail(f"unknown field(s) {unknown}; allowed: {list(FIELDS)}")
        extra = {**extra, **{k: row[k] for k in unknown}}
    values: dict = {"name": name, "extra": extra}
    for key in TEXT_FIELDS:
        value = row.get(key)
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise fail(f"{key!r} must be a string, got {type(value).__name__}")
        values[key] = value
    for key in MEDIA_FIELDS:
        value = row.get(key)
        if value is not None and not isinstance(value, str):
            raise fail(f"{key!r} must be a path string, got {type(value).__name__}")
        values[key] = _resolve_media(value, base)
    for key in ("split", "source"):
        value = row.get(key)
        if value is not None and not isinstance(value, str):
            raise fail(f"{key!r} must be a string, got {type(value).__name__}")
        values[key] = (value or "").strip() or None
    origin = row.get("subtitle_source")
    origin = "" if origin is None else origin
    if not isinstance(origin, str) or origin.strip() not in SUBTITLE_SOURCES:
        raise fail(f"'subtitle_source' must be one of {list(SUBTITLE_SOURCES)}, got {origin!r}")
    values["subtitle_source"] = origin.strip()
    try:
        values["labels"] = parse_label_list(row.get("labels"))
    except LabelFormatError as exc:
        raise fail(f"bad 'labels': {exc}") from None
    return Sample(**values)


def read_manifest(
    path: str | Path, *, strict: bool = True, check_media: bool = False
) -> list[Sample]:
    """Read a JSONL or CSV manifest.

    Args:
        path: the ``.jsonl`` or ``.csv`` file.
        strict: unknown fields are an error (default); with ``strict=False`` they are
            kept in ``Sample.extra``.
        check_media: raise when a referenced video/audio file does not exist.

    Returns:
        The samples in file order; media paths are absolute.

    Raises:
        ManifestError: for a bad row (missing name, duplicate name, malformed labels,
            wrong types, unknown fields), naming the line, sample and file.
        UnsafeSampleNameError: a sample name that would leave its folder when joined into a
            path (``..``, an absolute path, a separator, NUL or another control character),
            naming the line and file. Both are :class:`LabelFormatError`.
    """
    path = Path(path)
    fmt = _manifest_format(path)
    text = read_text(path)
    base = path.resolve().parent
    rows = _jsonl_rows(text, path) if fmt == "jsonl" else _csv_rows(text, path)
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    for lineno, row in rows:
        sample = _row_to_sample(row, lineno=lineno, path=path, base=base, strict=strict)
        if sample.name in seen:
            raise ManifestError(f"duplicate name (first on line {seen[sample.name]})",
                                line=lineno, sample=sample.name, path=path)
        seen[sample.name] = lineno
        if check_media:
            for key in MEDIA_FIELDS:
                media = getattr(sample, key)
                if media is not None and not Path(media).is_file():
                    raise ManifestError(f"{key} file not found: {media}", line=lineno,
                                        sample=sample.name, path=path)
        samples.append(sample)
    return samples


# --------------------------------------------------------------------------- writing


def _relative_media(value: str | None, base: Path) -> str | None:
    if not value:
        return None
    p = Path(value)
    if not p.is_absolute():
        return p.as_posix()
    try:
        return p.resolve().relative_to(base).as_posix()
    except ValueError:
        return str(p)


def sample_to_row(sample: Sample, base: Path | None = None) -> dict:
    """A sample as a JSON-ready dict; media relative to ``base`` when inside it."""
    row = asdict(sample)
    if base is not None:
        for key in MEDIA_FIELDS:
            row[key] = _relative_media(row[key], base)
    return row


def write_manifest(samples: Iterable[Sample], path: str | Path) -> Path:
    """Write samples to a ``.jsonl`` or ``.csv`` manifest atomically (tmp file + rename).

    Media paths inside the manifest's folder are written relative to it. Names must be
    unique. Returns the path written.
    """
    path = Path(path)
    fmt = _manifest_format(path)
    base = path.parent.resolve()
    samples = list(samples)
    seen: set[str] = set()
    for sample in samples:
        if not sample.name:
            raise ManifestError("sample with an empty name", path=path)
        check_sample_name(sample.name, path=path)
        if sample.name in seen:
            raise ManifestError("duplicate name", sample=sample.name, path=path)
        seen.add(sample.name)
    rows = [sample_to_row(s, base) for s in samples]
    with atomic_path(path, "w", encoding="utf-8", newline="") as fh:
        if fmt == "jsonl":
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            writer = csv.DictWriter(fh, fieldnames=list(FIELDS), lineterminator="\n")
            writer.writeheader()
            for row in rows:
                try:
                    row["labels"] = format_label_list(row["labels"])
                except LabelFormatError as exc:
                    raise ManifestError(str(exc), sample=row["name"], path=path) from None
                row["extra"] = json.dumps(row["extra"], ensure_ascii=False) if row["extra"] else ""
                writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return path


# --------------------------------------------------------------------------- summaries


def media_report(samples: Iterable[Sample]) -> dict[str, int]:
    """Counts of samples, and of samples whose video/audio is missing (None or no file)."""
    report = {"samples": 0, "video_missing": 0, "audio_files": 0, "labelled": 0,
              "described": 0}
    for s in samples:
        report["samples"] += 1
        if s.video is None or not Path(s.video).is_file():
            report["video_missing"] += 1
        if s.audio is not None and Path(s.audio).is_file():
            report["audio_files"] += 1
        report["labelled"] += bool(s.labels)
        report["described"] += bool(s.description_en or s.description_zh)
    return report
