"""Scores of a system's predicted labels against the gold labels of a set of samples, per
split: what training, the demo and the annotation report print."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["score_predictions"]

_GROUPER = None


def score_predictions(predictions: Mapping[str, Sequence[str]], samples: Sequence[Any],
                      grouping: str = "lexical") -> dict[str, float]:
    """Set-metric scores of predicted labels against the samples' gold labels.

    ``samples``: anything with ``name``, ``labels`` and ``split``
    (:class:`affectgpt.data.manifest.Sample`).

    ``{"<subset>/avg", "<subset>/accuracy", "<subset>/recall", "<subset>/n"}`` for
    ``whole`` and for the ``train`` / ``test`` splits present; samples without gold
    labels are not scored.
    """
    from affectgpt.eval.set_metric import evaluate_set

    global _GROUPER
    gold = {s.name: list(s.labels) for s in samples if s.labels}
    subsets = {"whole": list(gold)}
    for split in ("train", "test"):
        names = [s.name for s in samples if s.split == split and s.name in gold]
        if names:
            subsets[split] = names
    groupings = None
    if grouping == "lexical" and gold:
        from affectgpt.eval.lexical import LexicalGrouper, lexical_groupings

        if _GROUPER is None:
            _GROUPER = LexicalGrouper()
        groupings = lexical_groupings(gold, predictions, list(gold), grouper=_GROUPER)
    scores: dict[str, float] = {}
    for subset, names in subsets.items():
        if not names:
            continue
        result = evaluate_set(gold, predictions, groupings, names, allow_missing=True)
        scores.update({f"{subset}/avg": result.avg, f"{subset}/accuracy": result.accuracy,
                       f"{subset}/recall": result.recall, f"{subset}/n": len(names)})
    return scores
