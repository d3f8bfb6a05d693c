"""The Markdown mirror of the HTML report (``report.md``): the same content, Markdown syntax
in the results' text escaped."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from affectgpt.report.assets import ReportImage, ReportPage
from affectgpt.report.content import (
    ablation_metrics,
    best_of,
    clip_facts,
    format_duration,
    format_score,
    plain_text,
    results_cell,
    results_columns,
)
from affectgpt.report.schema import METRIC_LABELS, ReportData

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


def _md_image(image: ReportImage) -> str:
    if image.src is None:
        return f"*{md_escape(image.title)}: {md_escape(image.problem)}*"
    src = image.src.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
    text = f"![{md_escape(image.title)}]({src})"
    return text + (f"\n\n{md_escape(image.caption)}" if image.caption else "")


def render_markdown(data: ReportData, page: ReportPage) -> str:
    """The Markdown mirror of :func:`render_html`."""
    out = [f"# {md_escape(data.title)}", "",
           f"created {md_escape(data.created)} · affectgpt {md_escape(page.environment.get('affectgpt', ''))}"]
    if data.summary:
        out += ["", md_escape(data.summary)]
    if data.notes:
        out += [""] + [f"- **note:** {md_escape(n)}" for n in data.notes]

    if data.systems:
        cols = results_columns(data)
        best = {key: best_of([results_cell(s, key)[0] for s in data.systems]) for _, _, key in cols}
        rows = []
        for system in data.systems:
            cells = [md_escape(system.name) + (f" ({system.runs} runs)" if system.runs else "")]
            for _, _, key in cols:
                value, std = results_cell(system, key)
                text = format_score(value, std)
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
        metrics = ablation_metrics(data)
        best = {(c, m): best_of([row.scores.get(c, {}).get(m) for row in ab.rows])
                for c in ab.cues for m in metrics}
        rows = []
        for row in ab.rows:
            cells = [md_escape(row.system)]
            for c in ab.cues:
                for m in metrics:
                    value = row.scores.get(c, {}).get(m)
                    text = format_score(value)
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
        facts = clip_facts(clip)
        if facts:
            out += [""] + [f"- {md_escape(k)}: {md_escape(v)}" for k, v in facts]

    if data.timings:
        rows = [[md_escape(t.name), format_duration(t.seconds), "reused" if t.reused else "fresh",
                 md_escape(t.detail)] for t in data.timings]
        rows.append(["**total**", f"**{format_duration(sum(t.seconds for t in data.timings))}**", "", ""])
        out += ["", "## Step timings", "",
                _md_table(["step", "time", "run", "detail"], rows, ["l", "r", "l", "l"])]
    if data.config:
        out += ["", "## Settings", "", _md_table(
            ["setting", "value"], [[md_escape(k), md_escape(plain_text(v))] for k, v in data.config.items()],
            ["l", "l"])]
    out += ["", "## Environment", "", _md_table(
        ["what", "value"], [[md_escape(k), md_escape(v)] for k, v in page.environment.items()],
        ["l", "l"])]
    return "\n".join(out) + "\n"
