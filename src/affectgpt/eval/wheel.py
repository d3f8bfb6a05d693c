"""The 2025 emotion-wheel (EW) metrics: deterministic, no LLM once labels exist.

Resources (a directory the user gives): ``wheel1..5.xlsx`` (columns level1, level2,
level3; blank cells repeat the cell above), ``synonym.xlsx`` (8 GPT runs, columns
``word_runK``/``synonym_runK``) and ``format.csv`` (``name,format``: a base word and its
inflected forms).

Label mappings (labels are lower-cased and stripped first; unmappable labels are DROPPED):

- ``M1``: the sorted-first base word of the label (format mapping);
- ``M2``: the sorted-first wheel word that M1 is a synonym of (raw mapping);
- ``M3`` for wheel K at level L: all wheel words reachable from all the label's base words,
  scanned in sorted order; the wheel-K level-L cluster of the first one wheel K contains.

Per sample precision/recall on mapped sets (a sample whose mapped gold set is empty is
skipped; an empty mapped prediction scores 0/0), means over samples, F = 2PR/(P+R).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from affectgpt.eval.labels import LabelFormatError, read_table

WHEELS = (1, 2, 3, 4, 5)
LEVELS = (1, 2)
# Whole-cell strings pandas reads as missing; the reference code read these tables with
# pandas, so treating them alike keeps the mappings identical.
_NA_STRINGS = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
               "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}


def _cell(value: object) -> str | None:
    if value is None:
        return None
    text = str(value)
    return None if text in _NA_STRINGS else text


def _split_words(text: str | None) -> list[str]:
    """The reference's list splitting: drop outer brackets, split at quotes and commas."""
    if text is None:
        return []
    text = text.strip()
    text = text[1:] if text.startswith("[") else text
    text = text[:-1] if text.endswith("]") else text
    return [w.strip() for w in re.split(r"['\",]", text) if w.strip()]


def _read_xlsx(path: Path) -> list[dict[str, object]]:
    import openpyxl

    if not path.exists():
        raise FileNotFoundError(f"emotion-wheel resource missing: {path}")
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        rows = list(wb.worksheets[0].iter_rows(values_only=True))
    finally:
        wb.close()
    if not rows:
        raise LabelFormatError("empty sheet", path=path)
    header = [str(h).strip() if h is not None else "" for h in rows[0]]
    return [dict(zip(header, r)) for r in rows[1:] if any(c is not None for c in r)]


def read_wheel(path: str | Path) -> dict[str, dict[str, list[str]]]:
    """``{level1: {level2: [level3, ...]}}`` from one wheel sheet (blank cells repeat)."""
    path = Path(path)
    tree: dict[str, dict[str, list[str]]] = {}
    current = {"level1": None, "level2": None, "level3": None}
    for row in _read_xlsx(path):
        for key in current:
            if key not in row:
                raise LabelFormatError(f"wheel sheet lacks column {key!r}", path=path)
            value = _cell(row[key])
            if value is not None:
                current[key] = value.lower().strip()
        if None in current.values():
            raise LabelFormatError("wheel sheet starts with blank cells", path=path)
        tree.setdefault(current["level1"], {}).setdefault(current["level2"], []).append(current["level3"])
    return tree


def wheel_clusters(tree: Mapping[str, Mapping[str, Sequence[str]]], level: int) -> dict[str, str]:
    """Map every word of a wheel to its level-1 root (level=1) or level-2 node (level=2);
    at level 2 a root maps to its sorted-first level-2 child."""
    clusters: dict[str, str] = {}
    for root, children in tree.items():
        clusters[root] = root if level == 1 else sorted(children)[0]
        for node, leaves in children.items():
            target = root if level == 1 else node
            clusters[node] = target
            for leaf in leaves:
                clusters[leaf] = target
    return clusters


@dataclass
class WheelResources:
    """Loaded emotion-wheel tables and the mappings built from them."""

    format_mapping: dict[str, list[str]]  # word form -> base words
    raw_mapping: dict[str, list[str]]  # base word -> wheel words it is a synonym of
    wheels: dict[int, dict[str, dict[str, list[str]]]]
    source: str = ""

    @classmethod
    def load(cls, directory: str | Path) -> WheelResources:
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"emotion-wheel directory not found: {directory}")
        wheels = {k: read_wheel(directory / f"wheel{k}.xlsx") for k in WHEELS}
        wheel_words = set()
        for tree in wheels.values():
            for root, children in tree.items():
                wheel_words.add(root)
                for node, leaves in children.items():
                    wheel_words.add(node)
                    wheel_words.update(leaves)
        raw_mapping = _read_synonyms(directory / "synonym.xlsx", wheel_words)
        format_mapping = _read_formats(directory / "format.csv")
        return cls(format_mapping, raw_mapping, wheels, str(directory))

    @cached_property
    def _clusters(self) -> dict[tuple[int, int], dict[str, str]]:
        return {(k, lvl): wheel_clusters(self.wheels[k], lvl) for k in WHEELS for lvl in LEVELS}

    def clusters(self, wheel: int, level: int) -> dict[str, str]:
        return self._clusters[(wheel, level)]

    # ------------------------------------------------------------------ mappings
    def m1(self, label: str) -> str | None:
        bases = self.format_mapping.get(label)
        return sorted(bases)[0] if bases else None

    def m2(self, label: str) -> str | None:
        base = self.m1(label)
        words = self.raw_mapping.get(base) if base is not None else None
        return sorted(words)[0] if words else None

    def m3(self, label: str, wheel: int, level: int) -> str | None:
        clusters = self.clusters(wheel, level)
        words = [w for base in self.format_mapping.get(label, ()) for w in self.raw_mapping.get(base, ())]
        for word in sorted(words):
            if word in clusters:
                return clusters[word]
        return None

    def map_labels(self, labels: Iterable[str], method: str) -> set[str]:
        """Map labels with ``method`` (``m1``, ``m2`` or ``m3-w<K>-l<L>``), dropping the
        labels that cannot be mapped."""
        fn = self.mapper(method)
        out = set()
        for label in labels:
            mapped = fn(label.lower().strip())
            if mapped is not None:
                out.add(mapped)
        return out

    def mapper(self, method: str):
        if method == "m1":
            return self.m1
        if method == "m2":
            return self.m2
        match = re.fullmatch(r"m3-w([1-5])-l([12])", method)
        if not match:
            raise ValueError(f"unknown wheel mapping {method!r}")
        wheel, level = int(match.group(1)), int(match.group(2))
        return lambda label: self.m3(label, wheel, level)


def _read_synonyms(path: Path, wheel_words: set[str]) -> dict[str, list[str]]:
    rows = _read_xlsx(path)
    runs = sorted({int(m.group(1)) for k in (rows[0] if rows else {}) if (m := re.fullmatch(r"word_run(\d+)", k))})
    if not runs:
        raise LabelFormatError("synonym sheet has no word_runK columns", path=path)
    merged: dict[str, set[str]] = {}
    for run in runs:
        for row in rows:
            word = _cell(row.get(f"word_run{run}"))
            if word is None:
                continue
            word = word.strip().lower()
            if word not in wheel_words:
                raise LabelFormatError(f"run {run} word {word!r} is not on any wheel", path=path)
            merged.setdefault(word, set()).add(word)
            for synonym in _split_words(_cell(row.get(f"synonym_run{run}"))):
                merged.setdefault(synonym.lower(), set()).add(word)
    return {k: sorted(v) for k, v in merged.items()}


def _read_formats(path: Path) -> dict[str, list[str]]:
    mapping: dict[str, list[str]] = {}
    for row in read_table(path):
        name = _cell(row.get("name"))
        if name is None:
            continue
        for form in _split_words(_cell(row.get("format"))):
            mapping.setdefault(form, []).append(name)
        mapping.setdefault(name, []).append(name)
    return mapping


# ---------------------------------------------------------------------- metrics


@dataclass
class WheelScore:
    method: str
    precision: float
    recall: float
    fscore: float
    num_samples: int


@dataclass
class WheelResult:
    scores: list[WheelScore]
    per_sample: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)

    def by_method(self) -> dict[str, WheelScore]:
        return {s.method: s for s in self.scores}

    @property
    def m_avg(self) -> float:
        """OV-MER's M-avg: the plain mean of the 12 F-scores."""
        return float(np.mean([s.fscore for s in self.scores]))

    def ew_fscore(self, level: int = 1) -> float:
        """AffectGPT-2025's EW score: mean F over the 5 wheels at one level."""
        by = self.by_method()
        return float(np.mean([by[f"m3-w{k}-l{level}"].fscore for k in WHEELS]))

    def to_dict(self) -> dict:
        return {
            "scores": {s.method: {"precision": s.precision, "recall": s.recall, "fscore": s.fscore,
                                  "num_samples": s.num_samples} for s in self.scores},
            "m_avg": self.m_avg,
            "ew_fscore_level1": self.ew_fscore(1),
            "ew_fscore_level2": self.ew_fscore(2),
            "samples": self.per_sample,
        }


WHEEL_METHODS = ("m1", "m2") + tuple(f"m3-w{k}-l{lvl}" for lvl in LEVELS for k in WHEELS)


def fscore(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def wheel_overlap(
    gold: Mapping[str, Sequence[str]], pred: Mapping[str, Sequence[str]], names: Sequence[str],
    resources: WheelResources, method: str,
) -> tuple[WheelScore, dict[str, tuple[float, float]]]:
    """Precision/recall/F of one mapping ``method`` over ``names``."""
    fn = resources.mapper(method)
    precisions, recalls, per_sample = [], [], {}
    for name in names:
        g = {m for x in gold[name] if (m := fn(x.lower().strip())) is not None}
        if not g:
            continue
        p = {m for x in pred.get(name, ()) if (m := fn(x.lower().strip())) is not None}
        hit = len(g & p)
        pr, rc = (hit / len(p), hit / len(g)) if p else (0.0, 0.0)
        precisions.append(pr)
        recalls.append(rc)
        per_sample[name] = (pr, rc)
    precision = float(np.mean(precisions)) if precisions else 0.0
    recall = float(np.mean(recalls)) if recalls else 0.0
    return WheelScore(method, precision, recall, fscore(precision, recall), len(precisions)), per_sample


def evaluate_wheel(
    gold: Mapping[str, Sequence[str]], pred: Mapping[str, Sequence[str]], resources: WheelResources,
    names: Sequence[str] | None = None, methods: Sequence[str] = WHEEL_METHODS,
) -> WheelResult:
    """The 12 OV-MER F-scores (M1, M2, M3 for 5 wheels x 2 levels), M-avg and EW scores."""
    names = list(gold) if names is None else list(names)
    scores, per_sample = [], {}
    for method in methods:
        score, samples = wheel_overlap(gold, pred, names, resources, method)
        scores.append(score)
        for name, pr in samples.items():
            per_sample.setdefault(name, {})[method] = pr
    return WheelResult(scores, per_sample)


def hit_rate(
    gold: Mapping[str, Sequence[str]], pred: Mapping[str, Sequence[str]], resources: WheelResources,
    names: Sequence[str] | None = None, level: int = 1,
) -> dict[str, float]:
    """Single-label datasets (MER2023, MELD, IEMOCAP): per wheel, the share of samples whose
    wheel-mapped gold label is among the wheel-mapped predictions (samples whose gold maps
    to nothing are skipped); ``mean`` averages the 5 wheels."""
    names = list(gold) if names is None else list(names)
    result = {}
    for k in WHEELS:
        fn = resources.mapper(f"m3-w{k}-l{level}")
        hits = []
        for name in names:
            g = {m for x in gold[name] if (m := fn(x.lower().strip())) is not None}
            if not g:
                continue
            p = {m for x in pred.get(name, ()) if (m := fn(x.lower().strip())) is not None}
            hits.append(float(bool(g & p)))
        result[f"wheel{k}"] = float(np.mean(hits)) if hits else 0.0
        result[f"wheel{k}_samples"] = len(hits)
    result["mean"] = float(np.mean([result[f"wheel{k}"] for k in WHEELS]))
    return result


# Polarity of the wheels' level-1 roots (surprise is neither).
ROOT_POLARITY = {
    "happy": 1, "joyful": 1, "joy": 1, "peaceful": 1, "powerful": 1, "genius": 1,
    "sad": -1, "mad": -1, "angry": -1, "anger": -1, "scared": -1, "fearful": -1, "fear": -1,
    "disgusted": -1, "disgust": -1, "bad": -1, "surprised": 0,
}
SENTIMENT_WORDS = {"positive": 1.0, "negative": -1.0, "neutral": 0.0}


def label_polarity(label: str, resources: WheelResources) -> float | None:
    """Polarity in [-1, 1] of one label: the mean polarity of its level-1 roots over the
    wheels that map it; None when no wheel maps it."""
    label = label.lower().strip()
    if label in SENTIMENT_WORDS:
        return SENTIMENT_WORDS[label]
    votes = [ROOT_POLARITY.get(r, 0) for k in WHEELS if (r := resources.m3(label, k, 1)) is not None]
    return float(np.mean(votes)) if votes else None


def prediction_polarity(labels: Sequence[str], resources: WheelResources) -> float:
    """Sentiment score of a predicted label set: the mean polarity of its mappable labels
    (0 when none maps). A single number (e.g. ``"-1.2"``) is taken as the score itself."""
    if len(labels) == 1:
        try:
            return float(labels[0])
        except ValueError:
            pass
    values = [v for x in labels if (v := label_polarity(x, resources)) is not None]
    return float(np.mean(values)) if values else 0.0


def weighted_f1(y_true: Sequence[bool], y_pred: Sequence[bool]) -> float:
    """F1 per class weighted by the class's support in ``y_true`` (sklearn 'weighted')."""
    y_true, y_pred = np.asarray(y_true, bool), np.asarray(y_pred, bool)
    total = 0.0
    for cls in (True, False):
        tp = np.sum((y_pred == cls) & (y_true == cls))
        fp = np.sum((y_pred == cls) & (y_true != cls))
        fn = np.sum((y_pred != cls) & (y_true == cls))
        f1 = 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)
        total += f1 * np.sum(y_true == cls)
    return float(total / len(y_true)) if len(y_true) else 0.0


def sentiment_f1(
    gold_scores: Mapping[str, float], pred: Mapping[str, Sequence[str]], resources: WheelResources,
    names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Sentiment datasets (MOSI, MOSEI, SIMS): predicted labels -> polarity, samples with
    gold == 0 dropped, weighted F1 of (gold > 0) vs (prediction > 0)."""
    names = [n for n in (list(gold_scores) if names is None else names) if gold_scores[n] != 0]
    y_true = [gold_scores[n] > 0 for n in names]
    y_pred = [prediction_polarity(pred.get(n, []), resources) > 0 for n in names]
    accuracy = float(np.mean(np.equal(y_true, y_pred))) if names else 0.0
    return {"weighted_f1": weighted_f1(y_true, y_pred), "accuracy": accuracy, "num_samples": len(names)}
