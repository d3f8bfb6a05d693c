"""Planning a synthetic clip: every random choice, from seeded streams keyed by
``(seed, prefix, index, purpose)``, so that e.g. the look of a clip is the same whatever
its emotion."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from affectgpt.data import faces, phrases, speech

GENERATOR = "affectgpt-synthetic-v1"
DEFAULT_EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "surprised", "worried",
                                     "disgusted")
CUES: tuple[str, ...] = ("video", "audio", "text", "all")
CUE_CHOICES: tuple[str, ...] = CUES + ("mixed",)
STYLES = ("fine", "coarse")

# Purposes of the random streams (part of the seed material; never renumber).
_EMOTION, _APPEARANCE, _MOTION, _SPEAKER, _TEXT, _EXPRESSION, _TIMING, _CUE, _NOISE, \
    _LABELS = range(10)


def _rng(seed: int, prefix: str, purpose: int, index: int) -> np.random.Generator:
    entropy = [int(seed) & 0xFFFFFFFF, zlib.crc32(prefix.encode()), purpose, index]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def _balanced(seed: int, prefix: str, purpose: int, index: int, choices: Sequence[str]) -> str:
    """Choice for clip ``index``: each block of len(choices) clips holds every choice once."""
    k = len(choices)
    order = _rng(seed, prefix, purpose, index // k).permutation(k)
    return choices[int(order[index % k])]


def plan_clip(index: int, *, seed: int = 0, cue: str = "all",
              emotions: Sequence[str] = DEFAULT_EMOTIONS, duration: tuple[float, float] = (3.0, 6.0),
              prefix: str = "synth_") -> dict:
    """The random choices for clip ``index`` (JSON-serialisable; no speech synthesised yet).

    Every purpose (emotion, cue, look, motion, speaker, sentence, expression timing,
    labels, noise) has its own random stream, so e.g. the look of a clip is the same
    whatever its emotion.
    """
    unknown = [e for e in emotions if e not in faces.EXPRESSIONS]
    if unknown or not emotions:
        raise ValueError(f"unknown emotions {unknown}; choose from {tuple(faces.EXPRESSIONS)}")
    if cue not in CUE_CHOICES:
        raise ValueError(f"cue must be one of {CUE_CHOICES}, got {cue!r}")
    emotion = _balanced(seed, prefix, _EMOTION, index, list(emotions))
    clip_cue = _balanced(seed, prefix, _CUE, index, list(CUES)) if cue == "mixed" else cue
    face_cue = clip_cue in ("video", "all")
    voice_cue = clip_cue in ("audio", "all")
    text_cue = clip_cue in ("text", "all")

    rng = _rng(seed, prefix, _TEXT, index)
    neutral_i = int(rng.integers(len(phrases.NEUTRAL_SENTENCES)))
    emotional_i = int(rng.integers(1 << 30))
    if text_cue and emotion != "neutral":
        table = phrases.EMOTIONAL_SENTENCES[emotion]
        subtitle_en, subtitle_zh = table[emotional_i % len(table)]
    else:
        subtitle_en, subtitle_zh = phrases.NEUTRAL_SENTENCES[neutral_i]

    lo, hi = duration
    rng = _rng(seed, prefix, _TIMING, index)
    target = float(rng.uniform(lo, hi))
    speech_onset = float(rng.uniform(0.15, 0.5))

    rng = _rng(seed, prefix, _EXPRESSION, index)
    peak, onset, ramp = (float(rng.uniform(0.75, 1.0)), float(rng.uniform(0.3, 1.5)),
                         float(rng.uniform(0.4, 1.2)))
    tears = bool(rng.random() < 0.6)
    targets = dict(faces.EXPRESSIONS[emotion]) if face_cue else {}
    if not tears:
        targets.pop("tears", None)
    expression = {"targets": targets, "peak": round(peak, 4), "onset": round(onset, 3),
                  "ramp": round(ramp, 3)}

    speaker = speech.sample_speaker(_rng(seed, prefix, _SPEAKER, index))
    voice = speech.prosody_params(speaker, emotion if voice_cue else None)

    rng = _rng(seed, prefix, _LABELS, index)
    pool = phrases.SYNONYMS[emotion]
    extra_labels = rng.choice(len(pool) - 1, size=int(rng.integers(1, 3)), replace=False)
    labels = [pool[0]] + [pool[1 + int(i)] for i in extra_labels]

    rng = _rng(seed, prefix, _NOISE, index)
    noise = {"level": round(float(rng.uniform(0.001, 0.004)), 5),
             "seed": int(rng.integers(1 << 31))}

    return {
        "generator": GENERATOR, "seed": seed, "prefix": prefix, "index": index,
        "cue": clip_cue, "emotion": emotion, "labels": labels,
        "modalities_with_cue": [m for m, on in (("video", face_cue), ("audio", voice_cue),
                                                ("text", text_cue)) if on],
        "subtitle_en": subtitle_en, "subtitle_zh": subtitle_zh,
        "face": {"appearance": faces.sample_appearance(_rng(seed, prefix, _APPEARANCE, index)),
                 "motion": faces.sample_motion(_rng(seed, prefix, _MOTION, index), hi),
                 "expression": expression, "tears": tears and face_cue and emotion == "sad"},
        "voice": {**voice, "speaker": speaker},
        "timing": {"target_duration": round(target, 3), "speech_onset": round(speech_onset, 3)},
        "noise": noise,
    }
