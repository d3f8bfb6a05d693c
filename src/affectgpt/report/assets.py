"""The images and facts of a report, prepared before any text is rendered: the trainer's
plots linked (or copied into ``report_files/`` when they lie outside the run folder), the
per-epoch comparison plot and the described clip's frame strip drawn, the environment
collected."""

from __future__ import annotations

import io
import os
import platform
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from affectgpt.io import atomic_write
from affectgpt.report.schema import METRIC_LABELS, DescribedClip, EpochCurves, ReportData

ASSETS = "report_files"


@dataclass
class ReportImage:
    """An image of the report, or why it is missing."""

    src: str | None  # posix path relative to the run folder, None when missing
    title: str
    caption: str = ""
    problem: str = ""  # why there is no image


@dataclass
class ReportPage:
    """What :func:`~affectgpt.report.render.write_report` prepared before rendering text: image files and facts."""

    figures: list[ReportImage] = field(default_factory=list)
    comparison: ReportImage | None = None
    strip: ReportImage | None = None
    video: str | None = None
    environment: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, run_dir: Path, data: ReportData) -> ReportPage:
        page = cls(environment={**collect_environment(), **data.environment})
        assets = run_dir / ASSETS
        for fig in data.figures:
            src, problem = _link_asset(run_dir, fig.path)
            page.figures.append(ReportImage(src, fig.title or Path(fig.path).stem, fig.caption, problem))
        if data.epoch_curves is not None and data.epoch_curves.series:
            page.comparison = _comparison_plot(data.epoch_curves, assets / "epoch_scores.png",
                                               run_dir)
        if data.clip is not None:
            page.strip = _clip_strip(data.clip, assets / "clip_frames.jpg", run_dir)
            video = _resolve(run_dir, data.clip.video)
            page.video = _relative(video, run_dir) if video.is_file() else None
        return page


def _resolve(run_dir: Path, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else run_dir / p


def _relative(path: Path, run_dir: Path) -> str:
    return Path(os.path.relpath(path.resolve(), run_dir.resolve())).as_posix()


def _link_asset(run_dir: Path, path: str) -> tuple[str | None, str]:
    """A figure's path relative to the run folder (copied in when it lies outside)."""
    full = _resolve(run_dir, path)
    if not full.is_file():
        return None, f"missing file: {path}"
    try:
        full.resolve().relative_to(run_dir.resolve())
    except ValueError:
        target = run_dir / ASSETS / "figures" / full.name
        n = 1
        while target.exists() and not _same_file(target, full):
            target = target.with_name(f"{full.stem}-{n}{full.suffix}")
            n += 1
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(full, target)
        full = target
    return _relative(full, run_dir), ""


def _same_file(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()


def frame_strip(frames: Sequence, height: int = 144, gap: int = 4):
    """Frames side by side in one ``PIL.Image`` (each scaled to ``height`` pixels)."""
    from PIL import Image

    tiles = []
    for frame in frames:
        image = Image.fromarray(frame)
        width = max(1, round(image.width * height / max(image.height, 1)))
        tiles.append(image.convert("RGB").resize((width, height), Image.Resampling.BICUBIC))
    total = sum(t.width for t in tiles) + gap * max(len(tiles) - 1, 0)
    strip = Image.new("RGB", (max(total, 1), height), (255, 255, 255))
    x = 0
    for tile in tiles:
        strip.paste(tile, (x, 0))
        x += tile.width + gap
    return strip


def jpeg_bytes(image, quality: int = 88) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _clip_strip(clip: DescribedClip, path: Path, run_dir: Path) -> ReportImage:
    from affectgpt.media import MediaError, read_frames

    title = f"{clip.frames} frames sampled uniformly"
    video = _resolve(run_dir, clip.video)
    try:
        frames = read_frames(video, clip.frames)
    except (MediaError, FileNotFoundError, OSError) as exc:
        return ReportImage(None, title, problem=f"frames not available: {exc}")
    atomic_write(path, jpeg_bytes(frame_strip(frames)))
    return ReportImage(_relative(path, run_dir), title)


def _comparison_plot(curves: EpochCurves, path: Path, run_dir: Path) -> ReportImage:
    metric = METRIC_LABELS.get(curves.metric, curves.metric)
    title = f"{metric} on {curves.split} per epoch"
    try:
        from affectgpt.train.plots import _pyplot, _save, centred_moving_average

        plt = _pyplot()
    except ImportError as exc:
        return ReportImage(None, title, problem=f"plot not drawn: {exc} (pip install matplotlib)")
    fig, ax = plt.subplots(figsize=(7.5, 4))
    try:
        for i, (name, s) in enumerate(curves.series.items()):
            color = f"C{i % 10}"
            y = [100 * v for v in s.values]
            ax.plot(s.epochs, y, "o", ms=3.5, alpha=0.45, color=color)
            ax.plot(s.epochs, centred_moving_average(y, curves.window), "-", lw=1.8,
                    color=color, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{metric} (x100)")
        ax.set_title(f"{title}: points raw, lines centred mean of {curves.window}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        _save(fig, path)
    finally:
        plt.close(fig)
    return ReportImage(_relative(path, run_dir), title,
                  f"Points: {metric} after each epoch; lines: centred moving average over "
                  f"{curves.window} epochs.")


def collect_environment() -> dict[str, str]:
    """Python, platform, CPU count and the versions of the main packages (read from their
    metadata, so nothing heavy is imported); the CUDA device when torch is already loaded."""
    import sys

    env = {"python": platform.python_version(), "platform": platform.platform(terse=True),
           "machine": platform.machine(), "cpus": str(os.cpu_count() or "?")}
    for package in ("affectgpt", "torch", "transformers", "numpy", "av"):
        try:
            env[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            env["device"] = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")
        except Exception:  # a broken CUDA setup must not stop a report
            env["device"] = "cpu"
    return env
