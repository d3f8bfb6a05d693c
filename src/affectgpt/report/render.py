"""Render a run's results into ``report.html`` (self-contained: inline CSS, no scripts, no
network) and ``report.md`` (the same content as Markdown).

Images live next to the reports: plots the trainer wrote are linked where they are (or
copied into ``report_files/`` when they lie outside the run folder); the renderer writes
its own (the per-epoch comparison plot and the described clip's frame strip) into
``report_files/``. Every piece of text from the results is escaped.
"""

from __future__ import annotations

import html
import io
import math
import os
import platform
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from affectgpt.io import atomic_write
from affectgpt.report.schema import (
    METRIC_LABELS,
    METRICS,
    SPLIT_ORDER,
    DescribedClip,
    EpochCurves,
    ReportData,
    as_report_data,
)

ASSETS = "report_files"
HTML_NAME = "report.html"
MD_NAME = "report.md"


def write_report(run_dir: str | os.PathLike, results: ReportData | Mapping[str, Any]
                 ) -> tuple[Path, Path]:
    """Write ``run_dir/report.html`` and ``run_dir/report.md``.

    Args:
        run_dir: the run folder; relative paths in ``results`` are resolved against it.
        results: the results structure documented in :mod:`affectgpt.report.schema` (a
            JSON-able ``dict``, e.g. a run's ``results.json``, or a :class:`ReportData`).

    Returns:
        ``(html_path, md_path)``.

    Missing plots, a clip that cannot be decoded or a missing matplotlib do not stop the
    report: the place of the image says what is missing instead.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = as_report_data(results)
    page = _Page.build(run_dir, data)
    html_path = atomic_write(run_dir / HTML_NAME, render_html(data, page))
    md_path = atomic_write(run_dir / MD_NAME, render_markdown(data, page))
    return html_path, md_path


# --------------------------------------------------------------------------- assets


@dataclass
class _Image:
    src: str | None  # posix path relative to the run folder, None when missing
    title: str
    caption: str = ""
    problem: str = ""  # why there is no image


@dataclass
class _Page:
    """What :func:`write_report` prepared before rendering text: image files and facts."""

    figures: list[_Image] = field(default_factory=list)
    comparison: _Image | None = None
    strip: _Image | None = None
    video: str | None = None
    environment: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, run_dir: Path, data: ReportData) -> _Page:
        page = cls(environment={**collect_environment(), **data.environment})
        assets = run_dir / ASSETS
        for fig in data.figures:
            src, problem = _link_asset(run_dir, fig.path)
            page.figures.append(_Image(src, fig.title or Path(fig.path).stem, fig.caption, problem))
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


def _clip_strip(clip: DescribedClip, path: Path, run_dir: Path) -> _Image:
    from affectgpt.media import MediaError, read_frames

    title = f"{clip.frames} frames sampled uniformly"
    video = _resolve(run_dir, clip.video)
    try:
        frames = read_frames(video, clip.frames)
    except (MediaError, FileNotFoundError, OSError) as exc:
        return _Image(None, title, problem=f"frames not available: {exc}")
    atomic_write(path, jpeg_bytes(frame_strip(frames)))
    return _Image(_relative(path, run_dir), title)


def _comparison_plot(curves: EpochCurves, path: Path, run_dir: Path) -> _Image:
    metric = METRIC_LABELS.get(curves.metric, curves.metric)
    title = f"{metric} on {curves.split} per epoch"
    try:
        from affectgpt.train.plots import _pyplot, _save, centred_moving_average

        plt = _pyplot()
    except ImportError as exc:
        return _Image(None, title, problem=f"plot not drawn: {exc} (pip install matplotlib)")
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
    return _Image(_relative(path, run_dir), title,
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


# --------------------------------------------------------------------------- shared logic


def _splits(data: ReportData) -> list[str]:
    present = {s for system in data.systems for s in system.scores}
    order = [data.primary_split] + [s for s in SPLIT_ORDER if s != data.primary_split]
    return [s for s in order if s in present] + sorted(present - set(order))


def _split_metrics(data: ReportData, split: str) -> list[str]:
    present = {m for system in data.systems for m in system.scores.get(split, {})}
    return [m for m in METRICS if m in present]


def _wheel_keys(data: ReportData) -> list[str]:
    keys: list[str] = []
    for system in data.systems:
        keys += [k for k in system.wheel if k not in keys]
    return keys


def _fmt(value: float | None, std: float | None = None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    text = f"{100 * value:.2f}"
    return f"{text}±{100 * std:.2f}" if std is not None and math.isfinite(std) else text


def _best(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return max(finite) if len(finite) > 1 else None


def _results_columns(data: ReportData) -> list[tuple[str, str, str]]:
    """``(group, label, key)`` per score column; key ``split/metric`` or ``wheel/name``."""
    cols = []
    for split in _splits(data):
        cols += [(split, METRIC_LABELS[m], f"{split}/{m}") for m in _split_metrics(data, split)]
    cols += [("emotion wheel", k, f"wheel/{k}") for k in _wheel_keys(data)]
    return cols


def _results_cell(system, key: str) -> tuple[float | None, float | None]:
    group, name = key.split("/", 1)
    if group == "wheel":
        return system.wheel.get(name), None
    return system.scores.get(group, {}).get(name), system.std.get(group, {}).get(name)


def _ablation_metrics(data: ReportData) -> list[str]:
    present = {m for row in data.ablation.rows for cell in row.scores.values() for m in cell}
    return [m for m in METRICS if m in present]


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)} min {secs:04.1f} s"


def _clip_facts(clip: DescribedClip) -> list[tuple[str, str]]:
    facts = []
    if clip.name:
        facts.append(("clip", clip.name))
    if clip.system:
        facts.append(("described by", clip.system))
    if clip.cue:
        facts.append(("emotion cue in", clip.cue))
    used = [m for m, flag in (("video", clip.has_video), ("audio", clip.has_audio)) if flag]
    if clip.has_video is not None or clip.has_audio is not None:
        facts.append(("modalities used", ", ".join(used + ["subtitle"] if clip.subtitle else used)
                      or "none"))
    if clip.seconds is not None:
        facts.append(("describe time", f"{clip.seconds:.2f} s"))
    facts += [(str(k), _plain(v)) for k, v in clip.extra.items()]
    return facts


# --------------------------------------------------------------------------- HTML

CSS = """
:root { --fg: #1d2330; --muted: #5d6677; --line: #dde2ea; --bg: #f5f7fa; --card: #fff;
        --accent: #3b5bdb; --chip: #e7ecff; --gold: #e6f6ea; --warn: #fff4e0; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
       font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 24px 48px; }
header h1 { margin: 0 0 4px; font-size: 28px; letter-spacing: -0.01em; }
.meta { color: var(--muted); font-size: 13px; margin: 0 0 12px; }
nav { display: flex; flex-wrap: wrap; gap: 6px; margin: 14px 0 22px; }
nav a { color: var(--accent); text-decoration: none; font-size: 13px; padding: 3px 10px;
        border: 1px solid var(--line); border-radius: 999px; background: var(--card); }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
          padding: 18px 22px; margin: 0 0 18px; }
h2 { font-size: 19px; margin: 0 0 12px; }
h3 { font-size: 15px; margin: 16px 0 8px; }
p.note, p.hint { color: var(--muted); font-size: 13px; margin: 8px 0 0; }
.callout { background: var(--warn); border: 1px solid #f2d19b; border-radius: 8px;
           padding: 10px 14px; margin: 0 0 18px; }
.callout ul { margin: 0; padding-left: 18px; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: top; }
thead th { background: #eef1f6; font-weight: 600; white-space: nowrap; }
thead tr.group th { text-align: center; border-bottom: 2px solid var(--line); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) td { background: #fafbfd; }
td.best { font-weight: 700; }
tfoot td { font-weight: 600; border-top: 2px solid var(--line); }
.sub { color: var(--muted); font-size: 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
figure { margin: 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px;
             background: #fff; display: block; }
figcaption { font-size: 13px; color: var(--muted); margin-top: 4px; }
.missing { border: 1px dashed #c9a; color: #8a4b5b; background: #fff6f8; border-radius: 6px;
           padding: 18px; font-size: 13px; }
.strip { overflow-x: auto; }
.strip img { max-width: none; }
.chips { display: flex; flex-wrap: wrap; gap: 6px; margin: 0; padding: 0; list-style: none; }
.chips li { background: var(--chip); color: #24348f; border-radius: 999px; padding: 2px 11px;
            font-size: 13px; }
.chips.gold li { background: var(--gold); color: #1c6b34; }
blockquote { margin: 0; padding: 10px 14px; background: #f7f8fb; border-left: 4px solid var(--accent);
             border-radius: 0 6px 6px 0; white-space: pre-wrap; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 12px 0 0;
           font-size: 14px; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
video { max-width: 100%; border-radius: 6px; margin-top: 10px; }
.tag { display: inline-block; font-size: 12px; padding: 0 8px; border-radius: 999px; }
.tag.fresh { background: #e6f6ea; color: #1c6b34; }
.tag.reused { background: #eceff4; color: #5d6677; }
footer { color: var(--muted); font-size: 12px; text-align: center; margin-top: 24px; }
"""


def esc(text: Any) -> str:
    """HTML-escape any value (quotes included)."""
    return html.escape(str(text), quote=True)


def _html_image(image: _Image, cls: str = "") -> str:
    if image.src is None:
        return (f'<figure><div class="missing">{esc(image.title)}: {esc(image.problem)}</div>'
                "</figure>")
    caption = f"<figcaption><b>{esc(image.title)}</b>"
    caption += f" — {esc(image.caption)}</figcaption>" if image.caption else "</figcaption>"
    return (f'<figure class="{esc(cls)}"><img src="{esc(image.src)}" alt="{esc(image.title)}" '
            f'title="{esc(image.title)}">{caption}</figure>')


def _html_chips(labels: Sequence[str], cls: str = "") -> str:
    if not labels:
        return '<p class="note">(none)</p>'
    items = "".join(f"<li>{esc(label)}</li>" for label in labels)
    return f'<ul class="chips {esc(cls)}">{items}</ul>'


def _html_kv_table(rows: Mapping[str, Any], head: tuple[str, str]) -> str:
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows.items())
    return (f'<div class="table-wrap"><table><thead><tr><th>{esc(head[0])}</th>'
            f"<th>{esc(head[1])}</th></tr></thead><tbody>{body}</tbody></table></div>")


def _html_results(data: ReportData) -> str:
    cols = _results_columns(data)
    groups: list[tuple[str, int]] = []
    for group, _, _ in cols:
        if groups and groups[-1][0] == group:
            groups[-1] = (group, groups[-1][1] + 1)
        else:
            groups.append((group, 1))
    head = ('<tr class="group"><th rowspan="2">system</th>'
            + "".join(f'<th colspan="{n}">{esc(g)}</th>' for g, n in groups)
            + "</tr><tr>" + "".join(f'<th class="num">{esc(label)}</th>' for _, label, _ in cols)
            + "</tr>")
    best = {key: _best([_results_cell(s, key)[0] for s in data.systems]) for _, _, key in cols}
    rows = []
    for system in data.systems:
        note = f'<div class="sub">{esc(system.note)}</div>' if system.note else ""
        runs = f' <span class="sub">({system.runs} runs)</span>' if system.runs else ""
        cells = []
        for _, _, key in cols:
            value, std = _results_cell(system, key)
            mark = " best" if value is not None and value == best[key] else ""
            cells.append(f'<td class="num{mark}">{esc(_fmt(value, std))}</td>')
        rows.append(f"<tr><td>{esc(system.name)}{runs}{note}</td>{''.join(cells)}</tr>")
    return (f'<div class="table-wrap"><table class="results"><thead>{head}</thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _html_ablation(data: ReportData) -> str:
    ab = data.ablation
    metrics = _ablation_metrics(data)
    head = ('<tr class="group"><th rowspan="2">system</th>'
            + "".join(f'<th colspan="{len(metrics)}">cue: {esc(c)}</th>' for c in ab.cues)
            + "</tr><tr>"
            + "".join(f'<th class="num">{esc(METRIC_LABELS[m])}</th>' for _ in ab.cues for m in metrics)
            + "</tr>")
    best = {(c, m): _best([row.scores.get(c, {}).get(m) for row in ab.rows])
            for c in ab.cues for m in metrics}
    rows = []
    for row in ab.rows:
        cells = []
        for c in ab.cues:
            for m in metrics:
                value = row.scores.get(c, {}).get(m)
                mark = " best" if value is not None and value == best[(c, m)] else ""
                cells.append(f'<td class="num{mark}">{esc(_fmt(value))}</td>')
        rows.append(f"<tr><td>{esc(row.system)}</td>{''.join(cells)}</tr>")
    return (f'<div class="table-wrap"><table class="ablation"><thead>{head}</thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _html_timings(data: ReportData) -> str:
    rows = []
    for t in data.timings:
        tag = '<span class="tag reused">reused</span>' if t.reused else '<span class="tag fresh">fresh</span>'
        rows.append(f'<tr><td>{esc(t.name)}</td><td class="num">{esc(_duration(t.seconds))}</td>'
                    f"<td>{tag}</td><td>{esc(t.detail)}</td></tr>")
    total = sum(t.seconds for t in data.timings)
    return ('<div class="table-wrap"><table class="timings"><thead><tr><th>step</th>'
            '<th class="num">time</th><th>run</th><th>detail</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody><tfoot><tr><td>total</td>"
            f'<td class="num">{esc(_duration(total))}</td><td></td><td></td></tr></tfoot>'
            "</table></div>")


def _html_clip(clip: DescribedClip, page: _Page) -> str:
    parts = []
    if page.strip is not None:
        parts.append(_html_image(page.strip, "strip"))
        if page.strip.src is not None:
            parts.append(f'<p class="hint">{esc(page.strip.title)}.</p>')
    if page.video is not None:
        parts.append(f'<video controls preload="metadata" src="{esc(page.video)}"></video>'
                     f'<p class="hint"><a href="{esc(page.video)}">open the clip</a></p>')
    parts.append("<h3>Subtitle</h3>" + (f"<blockquote>{esc(clip.subtitle)}</blockquote>"
                                         if clip.subtitle else '<p class="note">(none)</p>'))
    parts.append(f'<h3>Description</h3><blockquote class="description">{esc(clip.description)}'
                 "</blockquote>")
    parts.append('<h3>Predicted labels</h3><div class="labels">'
                 f"{_html_chips(clip.labels)}</div>")
    if clip.gold_labels:
        parts.append(f"<h3>Gold labels</h3>{_html_chips(clip.gold_labels, 'gold')}")
    facts = _clip_facts(clip)
    if facts:
        parts.append('<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>"
                                                   for k, v in facts) + "</dl>")
    return "".join(parts)


def render_html(data: ReportData, page: _Page) -> str:
    """The HTML page (see :func:`write_report`)."""
    sections: list[tuple[str, str, str]] = []  # id, heading, body
    if data.systems:
        splits = ", ".join(_splits(data))
        sections.append(("results", "Results", _html_results(data)
                         + f'<p class="note">Scores x100 (the 2024 set metric on {esc(splits)}; '
                           "mean±std where several runs); best per column in bold.</p>"))
    if data.ablation is not None and data.ablation.rows:
        sections.append(("ablation", "Per-modality ablation", _html_ablation(data)
                         + f'<p class="note">Clips of the {esc(data.ablation.split)} split grouped by '
                           "the modality that carries the emotion; x100.</p>"))
    images = ([page.comparison] if page.comparison else []) + page.figures
    if images:
        sections.append(("curves", "Training curves",
                         '<div class="grid">' + "".join(_html_image(i) for i in images) + "</div>"))
    if data.clip is not None:
        sections.append(("clip", "A described clip", _html_clip(data.clip, page)))
    if data.timings:
        sections.append(("timings", "Step timings", _html_timings(data)))
    if data.config:
        sections.append(("config", "Settings", _html_kv_table(
            {k: _plain(v) for k, v in data.config.items()}, ("setting", "value"))))
    sections.append(("environment", "Environment", _html_kv_table(page.environment,
                                                                  ("what", "value"))))

    nav = "".join(f'<a href="#{sid}">{esc(title)}</a>' for sid, title, _ in sections)
    notes = ""
    if data.notes:
        notes = ('<div class="callout"><ul>' + "".join(f"<li>{esc(n)}</li>" for n in data.notes)
                 + "</ul></div>")
    summary = f"<p>{esc(data.summary)}</p>" if data.summary else ""
    body = "".join(f'<section id="{sid}"><h2>{esc(title)}</h2>{content}</section>'
                   for sid, title, content in sections)
    version = page.environment.get("affectgpt", "")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(data.title)}</title><style>{CSS}</style></head><body><main>"
        f'<header><h1>{esc(data.title)}</h1><p class="meta">created {esc(data.created)}'
        f"{' · affectgpt ' + esc(version) if version else ''}</p>{summary}</header>"
        f"<nav>{nav}</nav>{notes}{body}"
        f"<footer>report.md holds the same content as Markdown.</footer></main></body></html>\n")


def _plain(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


# --------------------------------------------------------------------------- Markdown

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def md_escape(text: Any) -> str:
    """Backslash-escape Markdown syntax (and HTML) in one line of table/inline text."""
    one_line = " ".join(str(text).split())
    return _MD_SPECIAL.sub(r"\\\1", one_line)


def _md_block(text: str) -> str:
    return "\n".join("> " + md_escape(line) if line.strip() else ">"
                     for line in str(text).splitlines() or [""])


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _md_image(image: _Image) -> str:
    if image.src is None:
        return f"*{md_escape(image.title)}: {md_escape(image.problem)}*"
    src = image.src.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
    text = f"![{md_escape(image.title)}]({src})"
    return text + (f"\n\n{md_escape(image.caption)}" if image.caption else "")


def render_markdown(data: ReportData, page: _Page) -> str:
    """The Markdown mirror of :func:`render_html`."""
    out = [f"# {md_escape(data.title)}", "",
           f"created {md_escape(data.created)} · affectgpt {md_escape(page.environment.get('affectgpt', ''))}"]
    if data.summary:
        out += ["", md_escape(data.summary)]
    if data.notes:
        out += [""] + [f"- **note:** {md_escape(n)}" for n in data.notes]

    if data.systems:
        cols = _results_columns(data)
        best = {key: _best([_results_cell(s, key)[0] for s in data.systems]) for _, _, key in cols}
        rows = []
        for system in data.systems:
            cells = [md_escape(system.name) + (f" ({system.runs} runs)" if system.runs else "")]
            for _, _, key in cols:
                value, std = _results_cell(system, key)
                text = _fmt(value, std)
                cells.append(f"**{text}**" if value is not None and value == best[key] else text)
            rows.append(cells)
        header = ["system"] + [md_escape(f"{g} {label}") for g, label, _ in cols]
        out += ["", "## Results", "", _md_table(header, rows, ["l"] + ["r"] * len(cols)), "",
                "Scores x100 (the 2024 set metric; mean±std where several runs); best per "
                "column in bold."]
        notes = [f"- {md_escape(s.name)}: {md_escape(s.note)}" for s in data.systems if s.note]
        out += ["", *notes] if notes else []

    if data.ablation is not None and data.ablation.rows:
        ab = data.ablation
        metrics = _ablation_metrics(data)
        best = {(c, m): _best([row.scores.get(c, {}).get(m) for row in ab.rows])
                for c in ab.cues for m in metrics}
        rows = []
        for row in ab.rows:
            cells = [md_escape(row.system)]
            for c in ab.cues:
                for m in metrics:
                    value = row.scores.get(c, {}).get(m)
                    text = _fmt(value)
                    cells.append(f"**{text}**" if value is not None and value == best[(c, m)] else text)
            rows.append(cells)
        header = ["system"] + [md_escape(f"{c} {METRIC_LABELS[m]}") for c in ab.cues for m in metrics]
        out += ["", "## Per-modality ablation", "",
                _md_table(header, rows, ["l"] + ["r"] * (len(header) - 1)), "",
                f"Clips of the {md_escape(ab.split)} split grouped by the modality that "
                "carries the emotion; x100."]

    images = ([page.comparison] if page.comparison else []) + page.figures
    if images:
        out += ["", "## Training curves"]
        for image in images:
            out += ["", f"### {md_escape(image.title)}", "", _md_image(image)]

    if data.clip is not None:
        clip = data.clip
        out += ["", "## A described clip", ""]
        if page.strip is not None:
            out += [_md_image(page.strip), ""]
        if page.video is not None:
            out += [f"[open the clip](<{page.video}>)", ""]
        out += ["**Subtitle**", "", _md_block(clip.subtitle) if clip.subtitle else "(none)", "",
                "**Description**", "", _md_block(clip.description), "",
                "**Predicted labels:** " + (", ".join(md_escape(x) for x in clip.labels) or "(none)")]
        if clip.gold_labels:
            out += ["", "**Gold labels:** " + ", ".join(md_escape(x) for x in clip.gold_labels)]
        facts = _clip_facts(clip)
        if facts:
            out += [""] + [f"- {md_escape(k)}: {md_escape(v)}" for k, v in facts]

    if data.timings:
        rows = [[md_escape(t.name), _duration(t.seconds), "reused" if t.reused else "fresh",
                 md_escape(t.detail)] for t in data.timings]
        rows.append(["**total**", f"**{_duration(sum(t.seconds for t in data.timings))}**", "", ""])
        out += ["", "## Step timings", "",
                _md_table(["step", "time", "run", "detail"], rows, ["l", "r", "l", "l"])]
    if data.config:
        out += ["", "## Settings", "", _md_table(
            ["setting", "value"], [[md_escape(k), md_escape(_plain(v))] for k, v in data.config.items()],
            ["l", "l"])]
    out += ["", "## Environment", "", _md_table(
        ["what", "value"], [[md_escape(k), md_escape(v)] for k, v in page.environment.items()],
        ["l", "l"])]
    return "\n".join(out) + "\n"
