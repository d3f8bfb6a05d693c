"""Speech with emotional prosody from espeak-ng (a subprocess; no Python binding needed).

A voice is a speaker (espeak-ng variant plus a personal pitch/speed offset, drawn per
clip) and a prosody: the emotion shifts pitch, speed, loudness, pitch range and word
gaps, and worried speech gets a slight tremolo. With a neutral prosody the same speaker
says the same words in the same way whatever the clip's emotion.
"""

from __future__ import annotations

import shutil
import subprocess
from xml.sax.saxutils import escape

import numpy as np

ESPEAK = "espeak-ng"
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m7", "f1", "f2", "f3", "f4", "f5")
ACCENTS = ("en-us", "en-gb")

# Prosody offsets per emotion: pitch (espeak -p, 0-99) offset, speed factor, amplitude
# (espeak -a) factor, SSML pitch range, extra word gap (-g, 10 ms units), tremolo depth,
# and the sentence-final punctuation that shapes espeak's intonation.
PROSODY: dict[str, dict] = {
    "neutral": {"pitch": 0, "speed": 1.0, "amplitude": 1.0, "range": "medium", "gap": 0,
                "tremolo": 0.0, "final": "."},
    "happy": {"pitch": 22, "speed": 1.18, "amplitude": 1.25, "range": "x-high", "gap": 0,
              "tremolo": 0.0, "final": "!"},
    "sad": {"pitch": -22, "speed": 0.74, "amplitude": 0.55, "range": "x-low", "gap": 4,
            "tremolo": 0.0, "final": "."},
    "angry": {"pitch": 5, "speed": 1.25, "amplitude": 1.8, "range": "high", "gap": 0,
              "tremolo": 0.0, "final": "!"},
    "surprised": {"pitch": 30, "speed": 1.05, "amplitude": 1.45, "range": "x-high", "gap": 0,
                  "tremolo": 0.0, "final": "?"},
    "worried": {"pitch": 12, "speed": 1.05, "amplitude": 0.7, "range": "low", "gap": 6,
                "tremolo": 0.3, "final": "."},
    "disgusted": {"pitch": -15, "speed": 0.8, "amplitude": 1.05, "range": "low", "gap": 2,
                  "tremolo": 0.0, "final": "."},
}


class SpeechError(RuntimeError):
    """espeak-ng is missing or failed."""


def espeak_available() -> bool:
    return shutil.which(ESPEAK) is not None


def sample_speaker(rng: np.random.Generator) -> dict:
    """A random speaker: voice variant, accent and personal pitch/speed/loudness."""
    variant = VARIANTS[rng.integers(len(VARIANTS))]
    return {
        "voice": f"{ACCENTS[rng.integers(len(ACCENTS))]}+{variant}",
        "pitch": int(rng.integers(40, 61)),
        "speed": int(rng.integers(150, 176)),
        "amplitude": int(rng.integers(80, 111)),
        "gap": int(rng.integers(0, 3)),
    }


def prosody_params(speaker: dict, emotion: str | None) -> dict:
    """espeak-ng parameters for ``speaker`` speaking with ``emotion``'s prosody (None: neutral)."""
    p = PROSODY[emotion or "neutral"]
    return {
        "voice": speaker["voice"],
        "pitch": int(np.clip(speaker["pitch"] + p["pitch"], 0, 99)),
        "speed": int(np.clip(round(speaker["speed"] * p["speed"]), 80, 450)),
        "amplitude": int(np.clip(round(speaker["amplitude"] * p["amplitude"]), 10, 180)),
        "range": p["range"],
        "gap": speaker["gap"] + p["gap"],
        "tremolo": p["tremolo"],
        "final": p["final"],
        "emotion": emotion or "neutral",
    }


def spoken_text(text: str, final: str) -> str:
    """``text`` with its sentence-final punctuation replaced by ``final``."""
    return text.rstrip().rstrip(".!?") + final


def synthesize(text: str, params: dict) -> tuple[np.ndarray, int]:
    """Speak ``text`` with espeak-ng; returns (float32 mono samples in [-1, 1], sample rate).

    ``params`` come from :func:`prosody_params` (voice, pitch, speed, amplitude, gap,
    range, tremolo). The pitch range is set through SSML ``<prosody range=...>``.
    """
    if not espeak_available():
        raise SpeechError(f"{ESPEAK} not found; install it (apt-get install espeak-ng)")
    ssml = f'<speak><prosody range="{params["range"]}">{escape(text)}</prosody></speak>'
    cmd = [ESPEAK, "-m", "-z", "-v", params["voice"], "-p", str(params["pitch"]),
           "-s", str(params["speed"]), "-a", str(params["amplitude"]), "-g", str(params["gap"]),
           "--stdout", ssml]
    try:
        out = subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout
    except subprocess.CalledProcessError as exc:
        raise SpeechError(f"{ESPEAK} failed: {exc.stderr.decode(errors='replace')}") from None
    samples, rate = _parse_wav(out)
    if params.get("tremolo"):
        t = np.arange(len(samples), dtype=np.float32) / rate
        samples = samples * (1.0 - params["tremolo"] * 0.5
                             * (1.0 + np.sin(2 * np.pi * 6.0 * t))).astype(np.float32)
    return samples, rate


def _parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Parse espeak-ng's streamed 16-bit mono WAV (its size fields may be bogus)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise SpeechError("espeak-ng did not return a WAV stream")
    pos, rate, pcm = 12, None, None
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if chunk == b"fmt ":
            channels = int.from_bytes(data[pos + 10:pos + 12], "little")
            rate = int.from_bytes(data[pos + 12:pos + 16], "little")
            bits = int.from_bytes(data[pos + 22:pos + 24], "little")
            if channels != 1 or bits != 16:
                raise SpeechError(f"unexpected WAV format: {channels} channels, {bits} bits")
        elif chunk == b"data":
            pcm = data[pos + 8:]
            break
        pos += 8 + size + (size & 1)
    if rate is None or pcm is None:
        raise SpeechError("malformed WAV stream from espeak-ng")
    pcm = pcm[: len(pcm) // 2 * 2]
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0, rate
