"""Verifiable rewards for reinforcement learning on emotion descriptions (GRPO).

A reward scores one sampled description::

    reward(text, labels, gold, sample=None) -> float

``text`` is the description, ``labels`` the emotion labels extracted from it (offline
lexicon, an LLM, or the description's own answer list), ``gold`` the sample's gold labels
and ``sample`` its name (needed only by rewards that look something up per sample, such as
the 2024 metric with stored groupings). Any callable with a ``name`` attribute and this
signature is a :class:`Reward`.

Components (each returns an unweighted value; :class:`CompositeReward` weights and sums):

``wheel`` (:class:`WheelReward`)
    The 2025 emotion-wheel score of one sample: the F-score of the wheel-mapped labels
    against the wheel-mapped gold labels (M3 mapping), averaged over the five wheels and
    the chosen levels (1 and 2 by default), in [0, 1]. A (wheel, level) that maps no gold
    label is left out of the mean, as the metric skips such samples; 0 when none maps.
``set`` (:class:`SetMetricReward`)
    The 2024 set metric of one sample (accuracy, recall or their mean) after synonym
    grouping: lexical (offline :class:`~affectgpt.eval.lexical.LexicalGrouper` over gold
    and predicted labels), stored per-sample groupings, or none.
``format`` (:class:`FormatReward`)
    1 when the description ends with a parsable, non-empty label list
    (``... ['happy', 'excited']``), or, with ``layout="think-answer"``, is exactly
    ``<think>...</think><answer>...</answer>`` with a label list as the answer; else 0.
``length`` (:class:`LengthPenalty`)
    ``-rate * (words beyond the target)`` (and below a minimum), capped: in [-cap, 0].
``gaming`` (:class:`LabelGamingPenalty`)
    Against label lists that buy recall: ``-(per_extra * labels beyond max_labels +
    per_duplicate * near-duplicates)``, capped. Near-duplicates are labels beyond the
    first of each synonym group (with a grouper) or repeated after normalisation.
``keyword`` (:class:`KeywordReward`)
    1 when the description contains a given word (steering and tests).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from affectgpt.eval.grouping import Groups, synonym_map
from affectgpt.eval.labels import LabelFormatError, parse_label_list
from affectgpt.eval.set_metric import score_sample
from affectgpt.eval.wheel import LEVELS, WHEELS, WheelResources, wheel_overlap

__all__ = [
    "ANSWER_LAYOUTS", "CompositeReward", "FormatReward", "KeywordReward", "LabelGamingPenalty",
    "LengthPenalty", "Reward", "RewardBreakdown", "RewardInputError", "RewardSettings",
    "SetMetricReward", "WheelReward", "answer_labels", "text_length",
]

ANSWER_LAYOUTS = ("labels", "think-answer")
_THINK_ANSWER = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.S)


class RewardInputError(ValueError):
    """A reward asked about something it cannot score (e.g. a sample without grouping)."""


@runtime_checkable
class Reward(Protocol):
    """``reward(text, labels, gold, sample=None) -> float``, with a ``name``."""

    name: str

    def __call__(self, text: str, labels: Sequence[str], gold: Sequence[str], *,
                 sample: str | None = None) -> float: ...


# --------------------------------------------------------------------------- parsing
def answer_labels(text: str, layout: str = "labels") -> list[str] | None:
    """The label list a description ends with (``layout="labels"``) or its
    ``<answer>`` (``"think-answer"``, the whole text being ``<think>..</think><answer>..
    </answer>`` with a non-empty think block); None when there is no parsable list.

    An answer may be bracketed (``['happy', 'tense']``) or plain comma-separated
    (``happy, tense``, think-answer only). A trailing full stop is allowed.
    """
    if layout not in ANSWER_LAYOUTS:
        raise ValueError(f"unknown answer layout {layout!r}; choose from {ANSWER_LAYOUTS}")
    if layout == "think-answer":
        match = _THINK_ANSWER.fullmatch(text or "")
        if match is None or not match.group(1).strip():
            return None
        answer = match.group(2).strip().rstrip(".").strip()
        candidate = answer if answer.startswith("[") else f"[{answer}]"
    else:
        body = (text or "").rstrip().rstrip(".").rstrip()
        if not body.endswith("]") or "[" not in body:
            return None
        candidate = body[body.rindex("["):]
    try:
        return parse_label_list(candidate)
    except LabelFormatError:
        return None


def text_length(text: str, unit: str = "words") -> int:
    """Length of a description in whitespace-separated words or in characters."""
    if unit == "words":
        return len((text or "").split())
    if unit == "chars":
        return len(text or "")
    raise ValueError(f"unit must be 'words' or 'chars', got {unit!r}")


def _normalise(label: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", label.lower()).split())


# --------------------------------------------------------------------------- components
class WheelReward:
    """Per-sample emotion-wheel F-score (M3 mapping), mean over ``wheels`` x ``levels``."""

    def __init__(self, resources: WheelResources, *, levels: Sequence[int] = LEVELS,
                 wheels: Sequence[int] = WHEELS, name: str = "wheel"):
        bad = [x for x in levels if x not in LEVELS] + [k for k in wheels if k not in WHEELS]
        if bad or not levels or not wheels:
            raise ValueError(f"levels must be a non-empty subset of {LEVELS} and wheels of "
                             f"{WHEELS}; got levels={list(levels)}, wheels={list(wheels)}")
        self.resources, self.name = resources, name
        self.methods = [f"m3-w{k}-l{lvl}" for lvl in levels for k in wheels]

    @classmethod
    def from_dir(cls, directory: str | Path, **kwargs) -> WheelReward:
        """Load the wheel tables (``wheel1..5.xlsx``, ``synonym.xlsx``, ``format.csv``)."""
        return cls(WheelResources.load(directory), **kwargs)

    def __call__(self, text: str, labels: Sequence[str], gold: Sequence[str], *,
                 sample: str | None = None) -> float:
        gold_map, pred_map = {"s": list(gold)}, {"s": list(labels)}
        scores = [score.fscore for method in self.methods
                  for score, _ in [wheel_overlap(gold_map, pred_map, ["s"], self.resources,
                                                 method)]
                  if score.num_samples]
        return sum(scores) / len(scores) if scores else 0.0


class SetMetricReward:
    """Per-sample 2024 set metric: ``measure`` = ``accuracy`` (|Y∩Ŷ|/|Ŷ|), ``recall``
    (|Y∩Ŷ|/|Y|) or ``avg`` (their mean) after synonym grouping.

    ``grouping``: None (labels compared verbatim), an object with ``group(labels) ->
    groups`` (e.g. :class:`~affectgpt.eval.lexical.LexicalGrouper`, run over the gold then
    predicted labels of the sample, as :func:`~affectgpt.eval.lexical.lexical_groupings`
    does) or stored groupings ``{sample: groups}`` (a sample missing from them is a
    :class:`RewardInputError`).
    """

    MEASURES = ("avg", "accuracy", "recall")

    def __init__(self, grouping=None, *, measure: str = "avg", name: str = "set"):
        if measure not in self.MEASURES:
            raise ValueError(f"measure must be one of {self.MEASURES}, got {measure!r}")
        if grouping is not None and not isinstance(grouping, Mapping) \
                and not callable(getattr(grouping, "group", None)):
            raise TypeError("grouping must be None, a grouper with .group(labels) or a "
                            "mapping {sample: groups}")
        self.grouping, self.measure, self.name = grouping, measure, name

    def groups(self, labels: Sequence[str], gold: Sequence[str], sample: str | None) -> Groups:
        if self.grouping is None:
            return []
        if isinstance(self.grouping, Mapping):
            if sample is None or sample not in self.grouping:
                raise RewardInputError(f"no stored synonym grouping for sample {sample!r}")
            return self.grouping[sample]
        return self.grouping.group(list(dict.fromkeys([*gold, *labels])))

    def __call__(self, text: str, labels: Sequence[str], gold: Sequence[str], *,
                 sample: str | None = None) -> float:
        mapping = synonym_map(self.groups(labels, gold, sample))
        accuracy, recall, _, _ = score_sample(list(gold), list(labels), mapping)
        return {"avg": (accuracy + recall) / 2, "accuracy": accuracy, "recall": recall}[
            self.measure]


class FormatReward:
    """1.0 when :func:`answer_labels` finds a label list (non-empty unless
    ``allow_empty``) in the description's ``layout``, else 0.0."""

    def __init__(self, layout: str = "labels", *, allow_empty: bool = False,
                 name: str = "format"):
        if layout not in ANSWER_LAYOUTS:
            raise ValueError(f"unknown answer layout {layout!r}; choose from {ANSWER_LAYOUTS}")
        self.layout, self.allow_empty, self.name = layout, allow_empty, name

    def __call__(self, text: str, labels: Sequence[str], gold: Sequence[str], *,
                 sample: str | None = None) -> float:
        found = answer_labels(text, self.layout)
        return 1.0 if found is not None and (found or self.allow_empty) else 0.0


class LengthPenalty:
    """``-min(cap, rate * (max(0, length - target) + max(0, minimum - length)))``.

    ``length`` is :func:`text_length` in ``unit`` (``words`` or ``chars``); ``target``
    None puts no upper bound.
    """

    def __init__(self, target: int | None = 200, *, minimum: int = 0, rate: float = 0.01,
                 cap: float = 1.0, unit: str = "words", name: str = "length"):
        text_length("", unit)
        if (target is not None and target < 0) or minimum < 0 or rate < 0 or cap < 0:
            raise ValueError("target, minimum, rate and cap must be >= 0")
        if target is not None and minimum > target:
            raise ValueError(f"minimum {minimum} exceeds target {target}")
        self.target, self.minimum, self.rate, self.cap = target, minimum, rate, cap
        self.unit, self.name = unit, name

    def __call__(self, text: str, labels: Sequence[str], gold: Sequence[str], *,
                 sample: str | None = None) -> float:
        n = text_length(text, self.unit)
        excess = max(0, n - self.target) if self.target is not None else 0
        excess += max(0, self.minimum - n)
        return -min(self.cap, self.rate * excess) if excess else 0.0


class LabelGamingPenalty:
    """``-min(cap, per_extra * max(0, n - max_labels) + per_duplicate * duplicates)``.

    ``n`` counts the extracted labels; ``duplicates`` is ``n`` minus the number of
    synonym groups (``grouper.group(labels)``, e.g. a
    :class:`~affectgpt.eval.lexical.LexicalGrouper`: "angry" and "anger" are one group)
    or, without a grouper, minus the number of distinct labels after lower-casing and
    dropping punctuation.
    """

    def __init__(self, max_labels: int = 6, *, per_extra: float = 0.1,
                 per_duplicate: float = 0.1, grouper=None, cap: float = 1.0,
                 name: str = "gaming"):
        if max_labels < 0 or per_extra < 0 or per_duplicate < 0 or cap < 0:
            raise ValueError("max_labels, per_extra, per_duplicate and cap must be >= 0")
        if grouper is not None and not callable(getattr(grouper, "group", None)):
            raise TypeError("grouper must have .group(labels) -> groups")
        self.max_labels, self.per_extra, self.per_duplicate = max_labels, per_extra, per_duplicate
        self.grouper, self.cap, self.name = grouper, cap, name

    def duplicates(self, labels: Sequence[str]) -> int:
        labels = list(labels)
        if self.grouper is not None:
            distinct = list(dict.fromkeys(labels))
            groups = self.grouper.group(distinct) if distinct else []
            return len(labels) - len(groups)
        return len(labels) - len({_normalise(x) for x in labels})

    def __call__(self, text: str, labels: Sequence[str], gold: Sequence[str], *,
                 sample: str | None = None) -> float:
        extra = max(0, len(labels) - self.max_labels)
        value = self.per_extra * extra + self.per_duplicate * self.duplicates(labels)
        return -min(self.cap, value) if value else 0.0


class KeywordReward:
    """1.0 when ``keyword`` occurs in the description (case-insensitive; as a whole word
    unless ``whole_word=False``), else 0.0."""

    def __init__(self, keyword: str, *, whole_word: bool = True, name: str = "keyword"):
        if not keyword:
            raise ValueError("keyword must not be empty")
        body = re.escape(keyword.lower())
        self.pattern = re.compile(rf"(?<!\w){body}(?!\w)" if whole_word else body)
        self.keyword, self.name = keyword, name

    def __call__(self, text: str, labels: Sequence[str], gold: Sequence[str], *,
                 sample: str | None = None) -> float:
        return 1.0 if self.pattern.search((text or "").lower()) else 0.0


# --------------------------------------------------------------------------- composite
@dataclass
class RewardBreakdown:
    """``total`` = sum of weight x component value; ``components``: unweighted values."""

    total: float
    components: dict[str, float] = field(default_factory=dict)


class CompositeReward:
    """Weighted sum of reward components, each reported on its own.

    ``components``: ``[(reward, weight), ...]`` or ``{name: (reward, weight)}``; names
    (the mapping's keys, else each reward's ``name``) must be unique.
    """

    def __init__(self, components: Mapping[str, tuple[Reward, float]]
                 | Sequence[tuple[Reward, float]]):
        if isinstance(components, Mapping):
            items = [(str(n), r, float(w)) for n, (r, w) in components.items()]
        else:
            items = [(str(getattr(r, "name", "")), r, float(w)) for r, w in components]
        names = [n for n, _, _ in items]
        if not items:
            raise ValueError("a composite reward needs at least one component")
        if any(not n for n in names) or len(set(names)) != len(names):
            raise ValueError(f"reward component names must be non-empty and unique: {names}")
        for n, r, w in items:
            if not callable(r):
                raise TypeError(f"reward component {n!r} is not callable")
            if not math.isfinite(w):
                raise ValueError(f"weight of {n!r} is not finite: {w}")
        self.items = items

    @property
    def names(self) -> list[str]:
        return [n for n, _, _ in self.items]

    @property
    def weights(self) -> dict[str, float]:
        return {n: w for n, _, w in self.items}

    def score(self, text: str, labels: Sequence[str], gold: Sequence[str], *,
              sample: str | None = None) -> RewardBreakdown:
        values = {}
        for name, reward, _ in self.items:
            value = float(reward(text, labels, gold, sample=sample))
            if not math.isfinite(value):
                raise ValueError(f"reward {name!r} returned {value} for sample {sample!r}")
            values[name] = value
        return RewardBreakdown(sum(w * values[n] for n, _, w in self.items), values)

    def __call__(self, text: str, labels: Sequence[str], gold: Sequence[str], *,
                 sample: str | None = None) -> float:
        return self.score(text, labels, gold, sample=sample).total


# --------------------------------------------------------------------------- settings
@dataclass
class RewardSettings:
    """A :class:`CompositeReward` described by plain values (for configs and CLIs).

    ``weights``: ``{component: weight}`` over ``wheel``, ``set``, ``format``, ``length``,
    ``gaming`` (a weight of 0 or a missing key leaves the component out). ``wheel_dir``:
    the emotion-wheel tables (needed by ``wheel``). ``set_grouping``: ``lexical``,
    ``none`` or a stored-groupings path (directory or zip of ``.npy``, or JSON).
    ``gaming_grouper``: group near-duplicate labels with the lexical grouper (else exact
    duplicates only).
    """

    weights: dict[str, float] = field(default_factory=lambda: {
        "wheel": 1.0, "length": 1.0, "gaming": 1.0})
    wheel_dir: str | None = None
    wheel_levels: tuple[int, ...] = LEVELS
    set_grouping: str = "lexical"
    set_measure: str = "avg"
    format_layout: str = "labels"
    length_target: int | None = 200
    length_minimum: int = 0
    length_rate: float = 0.01
    length_unit: str = "words"
    max_labels: int = 6
    per_extra_label: float = 0.1
    per_duplicate_label: float = 0.1
    gaming_grouper: bool = False

    COMPONENTS = ("wheel", "set", "format", "length", "gaming")

    def build(self, *, grouper=None) -> CompositeReward:
        """The composite reward; ``grouper`` overrides the lexical grouper (shared one)."""
        unknown = sorted(set(self.weights) - set(self.COMPONENTS))
        if unknown:
            raise ValueError(f"unknown reward components {unknown}; choose from "
                             f"{list(self.COMPONENTS)}")
        lexical = grouper

        def lexical_grouper():
            nonlocal lexical
            if lexical is None:
                from affectgpt.eval.lexical import LexicalGrouper

                lexical = LexicalGrouper()
            return lexical

        factories: dict[str, Callable[[], Reward]] = {
            "wheel": self._wheel,
            "set": lambda: SetMetricReward(self._set_grouping(lexical_grouper),
                                           measure=self.set_measure),
            "format": lambda: FormatReward(self.format_layout),
            "length": lambda: LengthPenalty(self.length_target, minimum=self.length_minimum,
                                            rate=self.length_rate, unit=self.length_unit),
            "gaming": lambda: LabelGamingPenalty(
                self.max_labels, per_extra=self.per_extra_label,
                per_duplicate=self.per_duplicate_label,
                grouper=lexical_grouper() if self.gaming_grouper else None),
        }
        return CompositeReward({name: (factories[name](), float(w))
                                for name, w in self.weights.items() if w})

    def _wheel(self) -> WheelReward:
        if not self.wheel_dir:
            raise ValueError("the wheel reward needs wheel_dir (the emotion-wheel tables: "
                             "wheel1..5.xlsx, synonym.xlsx, format.csv)")
        return WheelReward.from_dir(self.wheel_dir, levels=self.wheel_levels)

    def _set_grouping(self, lexical_grouper):
        if self.set_grouping == "lexical":
            return lexical_grouper()
        if self.set_grouping == "none":
            return None
        from affectgpt.eval.grouping import load_stored_groupings

        return load_stored_groupings(self.set_grouping)

