"""The label space of the measured clues and what each clue reports.

The seven :data:`EMOTIONS` are those of the synthetic corpus and, renamed, the seven
classes of the FER-2013 facial-expression CNN (fear -> worried), so every clue can speak
in the same labels and be fused by score. Valence and arousal of each label (in [-1, 1])
are the usual circumplex positions; they put a clue's distribution into words ("negative,
aroused") even when no single label dominates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["AROUSAL", "EMOTIONS", "FER_TO_EMOTION", "VALENCE", "ClueReading",
           "describe_affect", "normalise_scores"]

EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "surprised", "worried",
                             "disgusted")
#: the FER-2013 class names (:data:`affectgpt.encoders.face.FER_EMOTIONS`) in these labels
FER_TO_EMOTION = {"angry": "angry", "disgust": "disgusted", "fear": "worried",
                  "happy": "happy", "sad": "sad", "surprise": "surprised",
                  "neutral": "neutral"}
VALENCE = {"neutral": 0.0, "happy": 0.8, "sad": -0.7, "angry": -0.7, "surprised": 0.2,
           "worried": -0.5, "disgusted": -0.6}
AROUSAL = {"neutral": -0.2, "happy": 0.5, "sad": -0.5, "angry": 0.8, "surprised": 0.8,
           "worried": 0.4, "disgusted": 0.2}


def normalise_scores(scores: dict[str, float]) -> dict[str, float]:
    """``scores`` over :data:`EMOTIONS` (missing ones 0), non-negative, summing to 1."""
    values = np.array([max(0.0, float(scores.get(e, 0.0))) for e in EMOTIONS])
    total = values.sum()
    values = values / total if total > 0 else np.full(len(EMOTIONS), 1.0 / len(EMOTIONS))
    return {e: float(v) for e, v in zip(EMOTIONS, values)}


def describe_affect(valence: float, arousal: float) -> str:
    """Valence and arousal in words, e.g. ``"negative and aroused"``."""
    tone = ("clearly positive" if valence > 0.4 else "somewhat positive" if valence > 0.15
            else "clearly negative" if valence < -0.4 else "somewhat negative"
            if valence < -0.15 else "neither positive nor negative")
    energy = ("highly aroused" if arousal > 0.45 else "aroused" if arousal > 0.15
              else "low in energy" if arousal < -0.25 else "calm")
    return f"{tone} and {energy}"


@dataclass
class ClueReading:
    """What one measured clue says about a clip.

    Attributes:
        modality: ``face``, ``text`` or ``prosody``.
        available: whether the clue could be measured (a face was found, something was
            said); an unavailable clue has uniform ``scores`` and takes no part in fusion.
        scores: probability of each of :data:`EMOTIONS`.
        valence, arousal: the scores' expected valence and arousal (in [-1, 1]).
        text: the measurement in one or two English sentences (what an LLM merge reads).
        confidence: how far the scores are from uniform, in [0, 1] (fusion weights a
            confident reading more).
        measured: the raw measurements (probabilities, pitch, words per second, ...).
        reason: why the clue is unavailable.
    """

    modality: str
    available: bool
    scores: dict[str, float]
    text: str
    valence: float = 0.0
    arousal: float = 0.0
    confidence: float = 0.0
    measured: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    @classmethod
    def from_scores(cls, modality: str, scores: dict[str, float], text: str,
                    **kwargs: Any) -> ClueReading:
        """A reading whose valence, arousal and confidence follow from ``scores``."""
        probs = normalise_scores(scores)
        valence = sum(p * VALENCE[e] for e, p in probs.items())
        arousal = sum(p * AROUSAL[e] for e, p in probs.items())
        p = np.array(list(probs.values()))
        entropy = float(-(p * np.log(p + 1e-12)).sum())
        confidence = max(0.0, 1.0 - entropy / float(np.log(len(p))))
        return cls(modality, True, probs, text, round(valence, 4), round(arousal, 4),
                   round(confidence, 4), **kwargs)

    @classmethod
    def unavailable(cls, modality: str, text: str, reason: str, **kwargs: Any) -> ClueReading:
        """A clue that could not be measured (uniform scores, no part in fusion)."""
        return cls(modality, False, normalise_scores({}), text, reason=reason, **kwargs)

    @property
    def top(self) -> str:
        """The most probable label."""
        return max(self.scores, key=self.scores.get)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["scores"] = {k: round(v, 4) for k, v in self.scores.items()}
        return out
