"""What the HTML page and the Markdown mirror both show: the score columns, the best value
per column, formatted numbers and durations, the facts about a described clip."""

from __future__ import annotations

import math
from typing import Any

from affectgpt.report.schema import METRIC_LABELS, METRICS, SPLIT_ORDER, DescribedClip, ReportData


def score_splits(data: ReportData) -> list[str]:
    """The splits that have scores: the primary one first, then the usual order."""
    present = {s for system in data.systems for s in system.scores}
    order = [data.primary_split] + [s for s in SPLIT_ORDER if s != data.primary_split]
    return [s for s in order if s in present] + sorted(present - set(order))


def split_metrics(data: ReportData, split: str) -> list[str]:
    """The metrics some system has on ``split``, in the usual order."""
    present = {m for system in data.systems for m in system.scores.get(split, {})}
    return [m for m in METRICS if m in present]


def wheel_keys(data: ReportData) -> list[str]:
    """The emotion-wheel scores of all systems, in order of first appearance."""
    keys: list[str] = []
    for system in data.systems:
        keys += [k for k in system.wheel if k not in keys]
    return keys


def format_score(value: float | None, std: float | None = None) -> str:
    """A score x100 with two decimals (``±std`` when given); ``–`` when missing."""
    if value is None or not math.isfinite(value):
        return "–"
    text = f"{100 * value:.2f}"
    return f"{text}±{100 * std:.2f}" if std is not None and math.isfinite(std) else text


def best_of(values: list[float | None]) -> float | None:
    """The highest finite value, or None when fewer than two are there to compare."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return max(finite) if len(finite) > 1 else None


def results_columns(data: ReportData) -> list[tuple[str, str, str]]:
    """``(group, label, key)`` per score column; key ``split/metric`` or ``wheel/name``."""
    cols = []
    for split in score_splits(data):
        cols += [(split, METRIC_LABELS[m], f"{split}/{m}") for m in split_metrics(data, split)]
    cols += [("emotion wheel", k, f"wheel/{k}") for k in wheel_keys(data)]
    return cols


def results_cell(system, key: str) -> tuple[float | None, float | None]:
    """``(value, std)`` of a system for a :func:`results_columns` key."""
    group, name = key.split("/", 1)
    if group == "wheel":
        return system.wheel.get(name), None
    return system.scores.get(group, {}).get(name), system.std.get(group, {}).get(name)


def ablation_metrics(data: ReportData) -> list[str]:
    """The metrics present in the ablation, in the usual order."""
    present = {m for row in data.ablation.rows for cell in row.scores.values() for m in cell}
    return [m for m in METRICS if m in present]


def format_duration(seconds: float) -> str:
    """``12.3 s`` or ``4 min 05.0 s``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)} min {secs:04.1f} s"


def clip_facts(clip: DescribedClip) -> list[tuple[str, str]]:
    """``(what, value)`` lines about a described clip."""
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
    facts += [(str(k), plain_text(v)) for k, v in clip.extra.items()]
    return facts


def plain_text(value: Any) -> str:
    """A setting's value as text (lists joined with commas)."""
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)
