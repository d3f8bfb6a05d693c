"""The results structure a report is rendered from.

:func:`affectgpt.report.write_report` takes a JSON-able ``dict`` (what a run writes to
``results.json``) or a :class:`ReportData`. Every key is optional except where noted; scores
are fractions in ``[0, 1]`` and are shown x100 like the papers' tables. Unknown keys are
an error (:class:`ReportSchemaError` names them), so a typo never silently drops a table.

.. code-block:: python

    {
      "title": "AffectGPT demo",                  # page title
      "summary": "one paragraph shown under the title",
      "created": "2026-11-26T02:00:00Z",          # default: now (UTC)
      "primary_split": "test",                    # the split whose columns come first
      "systems": [                                # the Table-4-style results table
        {"name": "stage 1 + stage 2",             # required
         "scores": {                              # split -> metric -> value
           "test": {"accuracy": 0.61, "recall": 0.55, "avg": 0.58},
           "train": {...}, "whole": {...}},       # optional further splits
         "std": {"test": {"avg": 0.01}},          # optional: shown as mean±std
         "wheel": {"M-avg": 0.41, "EW-L1": 0.52}, # optional emotion-wheel scores
         "runs": 3,                               # optional: runs behind the mean
         "note": "LLM + adapters trained in both stages"},
      ],
      "ablation": {                               # per-modality ablation (cue x system)
        "split": "test",
        "cues": ["audio", "video", "text", "all"],
        "rows": [{"system": "stage 1 + stage 2",
                  "scores": {"audio": {"accuracy": 0.4, "recall": 0.3, "avg": 0.35},
                             "video": 0.52}}],    # a bare number is an "avg"
      },
      "figures": [                                # PNGs written by the trainer
        {"path": "stage2/loss.png", "title": "stage 2 loss", "caption": "..."},
        "stage2/scores.png",                      # a bare path is a figure too
      ],
      "epoch_curves": {                           # drawn by the renderer (matplotlib)
        "metric": "avg", "split": "test", "window": 5,
        "series": {"stage 2 only": {"epochs": [1, 2, 3], "values": [0.2, 0.3, 0.35]}},
      },
      "clip": {                                   # one described clip
        "video": "corpus/videos/synth_00003.mp4", # required; relative to the run folder
        "description": "...", "labels": ["happy", "excited"],     # required
        "subtitle": "...", "has_audio": true, "has_video": true, "seconds": 1.8,
        "name": "synth_00003", "system": "stage 1 + stage 2", "cue": "all",
        "gold_labels": ["happy"], "frames": 8,
        "extra": {"checkpoint": "stage2/model"},  # more facts, listed as key: value
      },                                          # (Description.to_dict()'s "path" = video)
      "timings": [{"name": "synthetic corpus", "seconds": 12.5, "reused": false,
                   "detail": "120 clips"}],
      "config": {"seed": 0, "epochs": 4},         # run settings, shown as a table
      "environment": {"device": "cpu"},           # merged over the collected defaults
      "notes": ["an untrained model describes at random"],
    }

Metric keys are ``accuracy`` (Accuracy_s), ``recall`` (Recall_s) and ``avg`` (Avg); the
capitalised names and ``Accuracy_s``/``Recall_s`` are accepted too.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

METRICS = ("accuracy", "recall", "avg")
METRIC_LABELS = {"accuracy": "Accuracy_s", "recall": "Recall_s", "avg": "Avg"}
_METRIC_ALIASES = {"accuracy": "accuracy", "accuracy_s": "accuracy", "acc": "accuracy",
                   "recall": "recall", "recall_s": "recall", "avg": "avg", "average": "avg"}
SPLIT_ORDER = ("test", "train", "whole")


class ReportSchemaError(ValueError):
    """The results structure does not follow the documented schema."""


def metric_key(name: str, where: str = "") -> str:
    """``"Accuracy_s"`` -> ``"accuracy"``; raises :class:`ReportSchemaError` for others."""
    key = _METRIC_ALIASES.get(str(name).strip().lower())
    if key is None:
        raise ReportSchemaError(f"{where}: unknown metric {name!r} (expected one of "
                                f"{', '.join(METRICS)})")
    return key


@dataclass
class SystemResult:
    """One row of the results table."""

    name: str
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    std: dict[str, dict[str, float]] = field(default_factory=dict)
    wheel: dict[str, float] = field(default_factory=dict)
    runs: int | None = None
    note: str = ""


@dataclass
class AblationRow:
    """One system's scores per cue modality: ``scores[cue][metric]``."""

    system: str
    scores: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class Ablation:
    """Per-modality ablation: which modality carried the emotion (cue) x system."""

    cues: list[str] = field(default_factory=lambda: ["audio", "video", "text", "all"])
    rows: list[AblationRow] = field(default_factory=list)
    split: str = "test"


@dataclass
class Figure:
    """An image (trainer plot) shown in the report; ``path`` relative to the run folder."""

    path: str
    title: str = ""
    caption: str = ""


@dataclass
class Series:
    epochs: list[float]
    values: list[float]


@dataclass
class EpochCurves:
    """Per-epoch scores of several systems, drawn by the renderer into one comparison plot
    (raw points and a centred moving average of ``window`` epochs)."""

    series: dict[str, Series] = field(default_factory=dict)
    metric: str = "avg"
    split: str = "test"
    window: int = 5


@dataclass
class DescribedClip:
    """A clip, what a model said about it, and a strip of ``frames`` sampled frames.

    The keys of ``Description.to_dict()`` (what :meth:`AffectGPT.describe` returns) fit
    in directly: its ``path`` stands for ``video`` when ``video`` is not given, and
    ``extra`` items are listed with the clip's facts.
    """

    video: str
    description: str
    labels: list[str]
    subtitle: str = ""
    has_audio: bool | None = None
    has_video: bool | None = None
    seconds: float | None = None
    name: str = ""
    system: str = ""
    cue: str = ""
    gold_labels: list[str] = field(default_factory=list)
    frames: int = 8
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepTiming:
    """How long one step of a run took and whether its output was reused from before."""

    name: str
    seconds: float
    reused: bool = False
    detail: str = ""


@dataclass
class ReportData:
    """Everything a report shows (see the module docstring for the JSON form)."""

    title: str = "AffectGPT demo"
    summary: str = ""
    created: str = ""
    primary_split: str = "test"
    systems: list[SystemResult] = field(default_factory=list)
    ablation: Ablation | None = None
    figures: list[Figure] = field(default_factory=list)
    epoch_curves: EpochCurves | None = None
    clip: DescribedClip | None = None
    timings: list[StepTiming] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.created:
            now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
            self.created = now.isoformat().replace("+00:00", "Z")

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form (what :meth:`from_dict` reads back)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportData:
        """Validate and convert the JSON-able form; :class:`ReportSchemaError` on errors."""
        _check_keys(data, cls, "results")
        d = dict(data)
        ablation = d.get("ablation")
        curves = d.get("epoch_curves")
        clip = d.get("clip")
        return cls(
            title=str(d.get("title") or cls.title),
            summary=str(d.get("summary") or ""),
            created=str(d.get("created") or ""),
            primary_split=str(d.get("primary_split") or "test"),
            systems=[_system(s, f"systems[{i}]") for i, s in enumerate(_list(d, "systems"))],
            ablation=_ablation(ablation) if ablation is not None else None,
            figures=[_figure(f, f"figures[{i}]") for i, f in enumerate(_list(d, "figures"))],
            epoch_curves=_curves(curves) if curves is not None else None,
            clip=_clip(clip) if clip is not None else None,
            timings=[_timing(t, f"timings[{i}]") for i, t in enumerate(_list(d, "timings"))],
            config=dict(_mapping(d.get("config") or {}, "config")),
            environment={str(k): str(v) for k, v in
                         _mapping(d.get("environment") or {}, "environment").items()},
            notes=[str(n) for n in _list(d, "notes")],
        )


def as_report_data(results: ReportData | Mapping[str, Any]) -> ReportData:
    """A :class:`ReportData` from either form."""
    if isinstance(results, ReportData):
        return results
    if not isinstance(results, Mapping):
        raise ReportSchemaError(f"results must be a mapping or ReportData, got {type(results).__name__}")
    return ReportData.from_dict(results)


# --------------------------------------------------------------------------- validation


def _check_keys(data: Any, cls: type, where: str, also: tuple[str, ...] = ()) -> None:
    _mapping(data, where)
    known = set(cls.__dataclass_fields__) | set(also)
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise ReportSchemaError(f"{where}: unknown key(s) {unknown} (known: {sorted(known)})")


def _mapping(value: Any, where: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise ReportSchemaError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _list(d: Mapping, key: str) -> list:
    value = d.get(key) or []
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ReportSchemaError(f"{key}: expected a list, got {type(value).__name__}")
    return list(value)


def _required(d: Mapping, key: str, where: str) -> Any:
    if d.get(key) is None:
        raise ReportSchemaError(f"{where}: missing required key {key!r}")
    return d[key]


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise ReportSchemaError(f"{where}: expected a number, got a boolean")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ReportSchemaError(f"{where}: expected a number, got {value!r}") from None
    return number


def _metrics(value: Any, where: str, *, bare: str | None = None) -> dict[str, float]:
    """``{"Accuracy_s": .5, "avg": .4}`` -> ``{"accuracy": .5, "avg": .4}`` (a bare number
    becomes the ``bare`` metric when allowed)."""
    if bare is not None and not isinstance(value, Mapping):
        return {bare: _number(value, where)}
    out = {}
    for name, v in _mapping(value, where).items():
        out[metric_key(name, where)] = _number(v, f"{where}.{name}")
    return out


def _per_split(value: Any, where: str) -> dict[str, dict[str, float]]:
    return {str(split): _metrics(m, f"{where}.{split}")
            for split, m in _mapping(value or {}, where).items()}


def _system(d: Any, where: str) -> SystemResult:
    _check_keys(d, SystemResult, where)
    runs = d.get("runs")
    return SystemResult(
        name=str(_required(d, "name", where)),
        scores=_per_split(d.get("scores"), f"{where}.scores"),
        std=_per_split(d.get("std"), f"{where}.std"),
        wheel={str(k): _number(v, f"{where}.wheel.{k}")
               for k, v in _mapping(d.get("wheel") or {}, f"{where}.wheel").items()},
        runs=int(_number(runs, f"{where}.runs")) if runs is not None else None,
        note=str(d.get("note") or ""),
    )


def _ablation(d: Any) -> Ablation:
    _check_keys(d, Ablation, "ablation")
    rows = []
    for i, row in enumerate(_list(d, "rows")):
        where = f"ablation.rows[{i}]"
        _check_keys(row, AblationRow, where)
        scores = {str(cue): _metrics(v, f"{where}.scores.{cue}", bare="avg")
                  for cue, v in _mapping(row.get("scores") or {}, f"{where}.scores").items()}
        rows.append(AblationRow(system=str(_required(row, "system", where)), scores=scores))
    cues = [str(c) for c in _list(d, "cues")] if d.get("cues") else Ablation().cues
    for row in rows:  # a cue only some rows have still gets a column
        cues += [c for c in row.scores if c not in cues]
    return Ablation(cues=cues, rows=rows, split=str(d.get("split") or "test"))


def _figure(d: Any, where: str) -> Figure:
    if isinstance(d, str):
        return Figure(path=d)
    _check_keys(d, Figure, where)
    return Figure(path=str(_required(d, "path", where)), title=str(d.get("title") or ""),
                  caption=str(d.get("caption") or ""))


def _curves(d: Any) -> EpochCurves:
    _check_keys(d, EpochCurves, "epoch_curves")
    series = {}
    for name, s in _mapping(d.get("series") or {}, "epoch_curves.series").items():
        where = f"epoch_curves.series.{name}"
        _check_keys(s, Series, where)
        epochs = [_number(e, f"{where}.epochs") for e in _list(s, "epochs")]
        values = [_number(v, f"{where}.values") if v is not None else math.nan
                  for v in _list(s, "values")]
        if len(epochs) != len(values):
            raise ReportSchemaError(f"{where}: {len(epochs)} epochs but {len(values)} values")
        series[str(name)] = Series(epochs=epochs, values=values)
    window = int(_number(d.get("window", 5), "epoch_curves.window"))
    if window < 1:
        raise ReportSchemaError("epoch_curves.window must be >= 1")
    return EpochCurves(series=series, metric=metric_key(d.get("metric") or "avg", "epoch_curves"),
                       split=str(d.get("split") or "test"), window=window)


def _clip(d: Any) -> DescribedClip:
    _check_keys(d, DescribedClip, "clip", also=("path",))
    if d.get("video") is None and d.get("path") is not None:  # Description.to_dict() names it path
        d = {**d, "video": d["path"]}
    labels = _required(d, "labels", "clip")
    if isinstance(labels, str) or not isinstance(labels, Sequence):
        raise ReportSchemaError("clip.labels: expected a list of strings")
    seconds = d.get("seconds")
    return DescribedClip(
        video=str(_required(d, "video", "clip")),
        description=str(_required(d, "description", "clip")),
        labels=[str(label) for label in labels],
        subtitle=str(d.get("subtitle") or ""),
        has_audio=None if d.get("has_audio") is None else bool(d["has_audio"]),
        has_video=None if d.get("has_video") is None else bool(d["has_video"]),
        seconds=None if seconds is None else _number(seconds, "clip.seconds"),
        name=str(d.get("name") or ""),
        system=str(d.get("system") or ""),
        cue=str(d.get("cue") or ""),
        gold_labels=[str(label) for label in _list(d, "gold_labels")],
        frames=int(_number(d.get("frames", 8), "clip.frames")),
        extra=dict(_mapping(d.get("extra") or {}, "clip.extra")),
    )


def _timing(d: Any, where: str) -> StepTiming:
    _check_keys(d, StepTiming, where)
    return StepTiming(name=str(_required(d, "name", where)),
                      seconds=_number(_required(d, "seconds", where), f"{where}.seconds"),
                      reused=bool(d.get("reused", False)), detail=str(d.get("detail") or ""))
