"""Prosody of a clip's speech: pitch, loudness, pauses and speaking rate, put into words
and into an arousal reading.

The speaking rate is the transcript's words (Chinese: characters, one syllable each) over
the *speech* seconds that voice-activity detection found (:attr:`Transcript.speech_seconds
<affectgpt.encoders.asr.Transcript.speech_seconds>`). The loudness-threshold estimate of the
voiced time counts only the loudest stretches of real recordings (background noise lifts
the floor, consonants and soft syllables fall under it), so words over it gave impossible
rates ("40.5 words per second"); it is used only when no VAD time is given, and a rate
above :data:`MAX_PLAUSIBLE_RATE` is not reported at all.

Prosody says how aroused a speaker is far more than whether the feeling is positive or
negative: the reading spreads its scores over the high- or the low-arousal labels.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from affectgpt.clues.labels import AROUSAL, EMOTIONS, ClueReading

__all__ = ["MAX_PLAUSIBLE_RATE", "Prosody", "count_words", "measure_prosody", "prosody_clue",
           "prosody_reading", "vad_speech_seconds"]

#: speaking rates above this (words or CJK characters per second) are measurement errors
MAX_PLAUSIBLE_RATE = {"words": 6.0, "characters": 10.0}
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def count_words(text: str) -> tuple[int, str]:
    """Spoken units of ``text`` and their name: CJK characters (``"characters"``) when the
    text is mostly Chinese, else whitespace-separated ``"words"``."""
    cjk = len(_CJK.findall(text))
    latin = sum(1 for token in _CJK.sub(" ", text).split() if any(c.isalnum() for c in token))
    if cjk and cjk >= latin:
        return cjk + latin, "characters"
    return latin, "words"


def _frame_rms_db(samples: np.ndarray, frame: int, hop: int) -> np.ndarray:
    n = max(1, 1 + (len(samples) - frame) // hop)
    frames = np.lib.stride_tricks.sliding_window_view(
        np.pad(samples, (0, max(0, frame - len(samples)))), frame)[::hop][:n]
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    return 20 * np.log10(rms + 1e-12)


def _frame_pitch(samples: np.ndarray, rate: int, frame: int, hop: int, voiced: np.ndarray,
                 fmin: float = 70.0, fmax: float = 400.0) -> np.ndarray:
    """Autocorrelation pitch (Hz) of the voiced frames (NaN elsewhere)."""
    lo, hi = int(rate / fmax), int(rate / fmin)
    pitches = np.full(len(voiced), np.nan)
    window = np.hanning(frame)
    for i in np.flatnonzero(voiced):
        x = samples[i * hop: i * hop + frame]
        if len(x) < frame:
            break
        x = (x - x.mean()) * window
        ac = np.correlate(x, x, mode="full")[frame - 1:]
        if ac[0] <= 0:
            continue
        seg = ac[lo:hi] / ac[0]
        best = float(seg.max())
        if best < 0.4:  # not periodic enough to be voiced speech
            continue
        # the shortest lag nearly as strong as the best one: multiples of the period
        # correlate as well, and taking the largest peak halves the pitch (octave errors)
        peaks = np.flatnonzero((seg[1:-1] >= seg[:-2]) & (seg[1:-1] >= seg[2:])
                               & (seg[1:-1] >= 0.85 * best)) + 1
        k = int(peaks[0]) if len(peaks) else int(np.argmax(seg))
        pitches[i] = rate / (lo + k)
    return pitches


@dataclass
class Prosody:
    """Measured prosody of a clip.

    ``speech_seconds``: voice-activity speech time when given (else the loud frames' time);
    ``voiced_seconds``: the loud frames' time (what pitch and loudness are measured on);
    ``words_per_second``: spoken units (``rate_unit``: words, or CJK characters) over
    ``speech_seconds``, ``None`` without a transcript or when implausible.
    """

    duration: float
    speech_seconds: float
    loudness_db: float
    pitch_hz: float | None
    pitch_range_st: float | None
    words_per_second: float | None
    pauses: int
    voiced_seconds: float = 0.0
    rate_unit: str = "words"
    speech_time_source: str = "loudness"

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def measure_prosody(samples: np.ndarray, rate: int = 16000, subtitle: str = "", *,
                    speech_seconds: float | None = None) -> Prosody:
    """Measure loudness (dBFS of the speech frames), median pitch and its spread
    (semitones, 10th-90th percentile, within an octave of the median), pauses over 0.3 s
    and the speaking rate of ``subtitle`` (the transcript) over ``speech_seconds``
    (voice-activity time from :class:`~affectgpt.encoders.asr.Transcript`; without it, the
    loud frames' time)."""
    samples = np.asarray(samples, dtype=np.float32)
    frame, hop = int(0.04 * rate), int(0.01 * rate)
    db = _frame_rms_db(samples, frame, hop)
    floor = np.percentile(db, 10) if len(db) else -100.0
    voiced = (db > max(floor + 15.0, -50.0)) & (db > db.max() - 35.0)
    voiced_seconds = float(voiced.sum() * hop / rate)
    loudness = float(np.mean(db[voiced])) if voiced.any() else float(db.max(initial=-100.0))
    pitch = _frame_pitch(samples, rate, frame, hop, voiced)
    pitch = pitch[np.isfinite(pitch)]
    pitch_hz = float(np.median(pitch)) if len(pitch) >= 5 else None
    spread = None
    if pitch_hz is not None:
        semis = 12 * np.log2(pitch / pitch_hz)
        semis = semis[np.abs(semis) <= 12]  # octave jumps of the tracker are not intonation
        spread = float(np.percentile(semis, 90) - np.percentile(semis, 10))
    pauses = 0
    idx = np.flatnonzero(voiced)
    if len(idx):
        gaps = np.diff(idx) * hop / rate
        pauses = int((gaps >= 0.3).sum())
    source = "vad" if speech_seconds is not None else "loudness"
    speech = float(speech_seconds) if speech_seconds is not None else voiced_seconds
    words, unit = count_words(subtitle)
    wps = words / speech if words and speech > 0.3 else None
    if wps is not None and wps > MAX_PLAUSIBLE_RATE[unit]:
        wps = None
    return Prosody(len(samples) / rate, speech, loudness, pitch_hz, spread, wps, pauses,
                   voiced_seconds, unit, source)


def _arousal_index(p: Prosody) -> tuple[int, list[str]]:
    parts = []
    level = "loud" if p.loudness_db > -16 else "soft" if p.loudness_db < -30 else "moderately loud"
    parts.append(f"the voice is {level} ({p.loudness_db:.0f} dBFS while speaking)")
    arousal = 1 if p.loudness_db > -16 else -1 if p.loudness_db < -30 else 0
    if p.pitch_hz is not None:
        height = "high" if p.pitch_hz > 220 else "low" if p.pitch_hz < 120 else "medium"
        parts.append(f"its pitch is {height} (median {p.pitch_hz:.0f} Hz)")
        if p.pitch_range_st is not None:
            if p.pitch_range_st > 6:
                parts.append(f"the intonation varies widely ({p.pitch_range_st:.1f} semitones)")
                arousal += 1
            elif p.pitch_range_st < 2.5:
                parts.append(f"the intonation is flat ({p.pitch_range_st:.1f} semitones)")
                arousal -= 1
            else:
                parts.append(f"the intonation varies moderately ({p.pitch_range_st:.1f} semitones)")
    if p.words_per_second is not None:
        fast, slow = (5.5, 3.0) if p.rate_unit == "characters" else (3.2, 1.8)
        pace = "fast" if p.words_per_second > fast else "slow" if p.words_per_second < slow \
            else "moderate"
        parts.append(f"the speaking rate is {pace} ({p.words_per_second:.1f} "
                     f"{p.rate_unit} per second)")
        arousal += 1 if pace == "fast" else -1 if pace == "slow" else 0
    if p.pauses:
        parts.append(f"there {'is' if p.pauses == 1 else 'are'} {p.pauses} noticeable "
                     f"pause{'s' if p.pauses > 1 else ''}")
    return arousal, parts


def prosody_clue(p: Prosody) -> str:
    """Put measured prosody into words (fixed thresholds; arousal, not valence)."""
    if p.speech_seconds < 0.3:
        return ("Acoustic measurement: almost no speech is audible in this clip, so the voice "
                "gives no emotional clue.")
    arousal, parts = _arousal_index(p)
    if arousal >= 2:
        reading = "an aroused, energetic state such as excitement, anger or surprise"
    elif arousal <= -2:
        reading = "a low-energy state such as sadness, tiredness or calm"
    else:
        reading = "a fairly calm or neutral state"
    text = "; ".join(parts)
    return (f"Acoustic measurement: {text[0].upper() + text[1:]}. Prosody alone suggests "
            f"{reading}; it says little about whether the feeling is positive or negative.")


def prosody_reading(p: Prosody, *, sharpness: float = 1.5) -> ClueReading:
    """A :class:`ClueReading` of measured prosody: the arousal index (-4..4) moves the
    scores towards the high- or the low-arousal labels (``sharpness`` sets how far)."""
    text = prosody_clue(p)
    if p.speech_seconds < 0.3:
        return ClueReading.unavailable("prosody", text, "no speech", measured=p.to_dict())
    arousal, _ = _arousal_index(p)
    level = float(np.clip(arousal / 3.0, -1.0, 1.0))
    logits = np.array([sharpness * level * AROUSAL[e] for e in EMOTIONS])
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    measured = {**p.to_dict(), "arousal_index": arousal}
    return ClueReading.from_scores("prosody", dict(zip(EMOTIONS, probs.tolist())), text,
                                   measured=measured)


def vad_speech_seconds(samples: np.ndarray, rate: int = 16000) -> float | None:
    """Seconds of speech that Silero voice-activity detection (the model faster-whisper
    ships) finds in 16 kHz mono ``samples``; ``None`` when faster-whisper is not installed."""
    if rate != 16000:
        raise ValueError("voice-activity detection needs 16 kHz audio")
    try:
        from faster_whisper.vad import VadOptions, get_speech_timestamps
    except ImportError:
        return None
    stamps = get_speech_timestamps(np.asarray(samples, dtype=np.float32), VadOptions())
    return float(sum(s["end"] - s["start"] for s in stamps) / rate)
