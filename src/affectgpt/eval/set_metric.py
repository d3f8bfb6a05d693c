"""The 2024 set metric (AffectGPT paper, eq. 1-3).

Per sample, gold and predicted labels are mapped to their synonym-group representative
and compared as sets: Accuracy_s = |Y ∩ Ŷ| / |Ŷ|, Recall_s = |Y ∩ Ŷ| / |Y|; an empty
prediction scores 0 and 0. Both are averaged over samples; Avg is their mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from affectgpt.eval.grouping import Groups, apply_map, synonym_map


class EvaluationInputError(ValueError):
    """Gold, prediction and grouping inputs that do not line up."""


@dataclass
class SampleScore:
    name: str
    accuracy: float
    recall: float
    gold: list[str]
    pred: list[str]
    gold_groups: list[str]
    pred_groups: list[str]


@dataclass
class SetResult:
    accuracy: float
    recall: float
    avg: float
    samples: list[SampleScore] = field(default_factory=list)

    def to_dict(self, with_samples: bool = True) -> dict:
        d = {"accuracy": self.accuracy, "recall": self.recall, "avg": self.avg,
             "num_samples": len(self.samples)}
        if with_samples:
            d["samples"] = [asdict(s) for s in self.samples]
        return d


def score_sample(gold: Sequence[str], pred: Sequence[str], mapping: Mapping[str, str]) -> tuple[float, float, set, set]:
    """(accuracy, recall, mapped gold set, mapped prediction set) of one sample."""
    g = apply_map(gold, mapping)
    p = apply_map(pred, mapping)
    if not p:
        return 0.0, 0.0, g, p
    hit = len(g & p)
    return hit / len(p), (hit / len(g) if g else 0.0), g, p


def select_names(
    gold: Mapping[str, object], pred: Mapping[str, object], names: Sequence[str] | None,
    *, allow_missing: bool = False,
) -> list[str]:
    """Samples to score: ``names`` (or all gold samples), all of which need gold labels and,
    unless ``allow_missing`` (then they count as empty predictions), predictions."""
    chosen = list(gold) if names is None else list(names)
    no_gold = [n for n in chosen if n not in gold]
    if no_gold:
        raise EvaluationInputError(
            f"{len(no_gold)} selected samples have no gold labels, e.g. {no_gold[:3]}")
    missing = [n for n in chosen if n not in pred]
    if missing and not allow_missing:
        raise EvaluationInputError(
            f"{len(missing)} of {len(chosen)} samples have no prediction, e.g. {missing[:3]}; "
            "fix the prediction file or pass --allow-missing to score them as empty predictions")
    if not chosen:
        raise EvaluationInputError("no samples to evaluate")
    return chosen


def evaluate_set(
    gold: Mapping[str, Sequence[str]],
    pred: Mapping[str, Sequence[str]],
    groupings: Mapping[str, Groups] | None = None,
    names: Sequence[str] | None = None,
    *,
    allow_missing: bool = False,
    require_groupings: bool = True,
) -> SetResult:
    """Score predictions against gold labels with per-sample groupings.

    ``groupings`` maps sample names to label groups; None compares labels verbatim.
    With ``require_groupings`` a selected sample without a grouping is an error.
    """
    chosen = select_names(gold, pred, names, allow_missing=allow_missing)
    if groupings is not None and require_groupings:
        no_group = [n for n in chosen if n not in groupings]
        if no_group:
            raise EvaluationInputError(
                f"{len(no_group)} samples have no synonym grouping, e.g. {no_group[:3]}")
    samples = []
    for name in chosen:
        mapping = synonym_map(groupings.get(name, [])) if groupings is not None else {}
        p_labels = pred.get(name, [])
        acc, rec, g, p = score_sample(gold[name], p_labels, mapping)
        samples.append(SampleScore(name, acc, rec, list(gold[name]), list(p_labels), sorted(g), sorted(p)))
    accuracy = float(np.mean([s.accuracy for s in samples]))
    recall = float(np.mean([s.recall for s in samples]))
    return SetResult(accuracy, recall, float(np.mean([accuracy, recall])), samples)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (ddof=0) over runs, as in the papers' ± std."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std())
