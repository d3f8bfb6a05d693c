"""The self-contained HTML report: inline CSS, no scripts, no network; every piece of text
from the results escaped."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
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
    score_splits,
)
from affectgpt.report.schema import METRIC_LABELS, DescribedClip, ReportData

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


def _html_image(image: ReportImage, cls: str = "") -> str:
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
    cols = results_columns(data)
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
    best = {key: best_of([results_cell(s, key)[0] for s in data.systems]) for _, _, key in cols}
    rows = []
    for system in data.systems:
        note = f'<div class="sub">{esc(system.note)}</div>' if system.note else ""
        runs = f' <span class="sub">({system.runs} runs)</span>' if system.runs else ""
        cells = []
        for _, _, key in cols:
            value, std = results_cell(system, key)
            mark = " best" if value is not None and value == best[key] else ""
            cells.append(f'<td class="num{mark}">{esc(format_score(value, std))}</td>')
        rows.append(f"<tr><td>{esc(system.name)}{runs}{note}</td>{''.join(cells)}</tr>")
    return (f'<div class="table-wrap"><table class="results"><thead>{head}</thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _html_ablation(data: ReportData) -> str:
    ab = data.ablation
    metrics = ablation_metrics(data)
    head = ('<tr class="group"><th rowspan="2">system</th>'
            + "".join(f'<th colspan="{len(metrics)}">cue: {esc(c)}</th>' for c in ab.cues)
            + "</tr><tr>"
            + "".join(f'<th class="num">{esc(METRIC_LABELS[m])}</th>' for _ in ab.cues for m in metrics)
            + "</tr>")
    best = {(c, m): best_of([row.scores.get(c, {}).get(m) for row in ab.rows])
            for c in ab.cues for m in metrics}
    rows = []
    for row in ab.rows:
        cells = []
        for c in ab.cues:
            for m in metrics:
                value = row.scores.get(c, {}).get(m)
                mark = " best" if value is not None and value == best[(c, m)] else ""
                cells.append(f'<td class="num{mark}">{esc(format_score(value))}</td>')
        rows.append(f"<tr><td>{esc(row.system)}</td>{''.join(cells)}</tr>")
    return (f'<div class="table-wrap"><table class="ablation"><thead>{head}</thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _html_timings(data: ReportData) -> str:
    rows = []
    for t in data.timings:
        tag = '<span class="tag reused">reused</span>' if t.reused else '<span class="tag fresh">fresh</span>'
        rows.append(f'<tr><td>{esc(t.name)}</td><td class="num">{esc(format_duration(t.seconds))}</td>'
                    f"<td>{tag}</td><td>{esc(t.detail)}</td></tr>")
    total = sum(t.seconds for t in data.timings)
    return ('<div class="table-wrap"><table class="timings"><thead><tr><th>step</th>'
            '<th class="num">time</th><th>run</th><th>detail</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody><tfoot><tr><td>total</td>"
            f'<td class="num">{esc(format_duration(total))}</td><td></td><td></td></tr></tfoot>'
            "</table></div>")


def _html_clip(clip: DescribedClip, page: ReportPage) -> str:
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
    facts = clip_facts(clip)
    if facts:
        parts.append('<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>"
                                                   for k, v in facts) + "</dl>")
    return "".join(parts)


def render_html(data: ReportData, page: ReportPage) -> str:
    """The HTML page (see :func:`write_report`)."""
    sections: list[tuple[str, str, str]] = []  # id, heading, body
    if data.systems:
        splits = ", ".join(score_splits(data))
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
            {k: plain_text(v) for k, v in data.config.items()}, ("setting", "value"))))
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
