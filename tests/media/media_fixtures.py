"""Helpers that generate real media files for the media tests.

Videos are encoded with PyAV. Every frame carries its own index as a row of black/white
stripes (bit ``j`` of the index is stripe ``j``, least significant first), plus a red block in
the top-left and a blue block in the bottom-right corner so that orientation errors show. A test
can therefore tell exactly WHICH frames a reader returned, and whether they are upright.
"""

from __future__ import annotations

import shutil
import subprocess
import wave as wavelib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

WIDTH, HEIGHT = 96, 64
BITS = 10
STRIPE = 8  # stripe width in pixels
CODE_TOP, CODE_BOTTOM = 20, 44  # rows holding the stripes


def pattern_frame(index: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """An RGB frame that encodes ``index`` (see the module docstring)."""
    image = np.full((height, width, 3), 96, np.uint8)
    image[:16, :24] = (230, 20, 20)  # red, top-left
    image[-16:, -24:] = (20, 20, 230)  # blue, bottom-right
    left = (width - BITS * STRIPE) // 2
    for bit in range(BITS):
        value = 255 if (index >> bit) & 1 else 0
        x0 = left + bit * STRIPE
        image[CODE_TOP:CODE_BOTTOM, x0 : x0 + STRIPE] = value
    return image


def decode_index(image: np.ndarray) -> int:
    """Read back the index drawn by :func:`pattern_frame` (an upright frame)."""
    height, width = image.shape[:2]
    left = (width - BITS * STRIPE) // 2
    gray = image.astype(np.float32).mean(axis=2)
    index = 0
    for bit in range(BITS):
        x0 = left + bit * STRIPE
        cell = gray[CODE_TOP + 4 : CODE_BOTTOM - 4, x0 + 2 : x0 + STRIPE - 2]
        if cell.mean() > 128:
            index |= 1 << bit
    return index


def is_upright(image: np.ndarray) -> bool:
    """True when the red block is top-left and the blue block bottom-right."""
    red = image[2:14, 2:20].astype(int).mean(axis=(0, 1))
    blue = image[-14:-2, -20:-2].astype(int).mean(axis=(0, 1))
    return bool(red[0] > 150 > red[2] and blue[2] > 150 > blue[0])


def write_video(
    path: Path,
    num_frames: int,
    fps: float = 25,
    *,
    codec: str = "libx264",
    gop: int | None = None,
    rotation: int | None = None,
    hflip: bool = False,
    frame_times_ms: list[int] | None = None,
    audio_seconds: float | None = None,
    audio_rate: int = 48000,
    audio_codec: str = "aac",
    options: dict[str, str] | None = None,
    b_frames: int | None = None,
) -> Path:
    """Encode a pattern video (optionally with a stereo sine audio track)."""
    container = av.open(str(path), mode="w")
    rate = Fraction(fps).limit_denominator(1001)
    stream = container.add_stream(codec, rate=rate)
    stream.width, stream.height = WIDTH, HEIGHT
    stream.pix_fmt = "yuv420p"
    opts = {}
    if codec == "libx264":
        # Fast, near-lossless, and with B-frames (reference and non-reference) so that
        # reordering and the skipping of non-reference pictures are exercised.
        opts = {"crf": "10", "preset": "ultrafast", "x264-params": "bframes=3:b-pyramid=normal"}
    opts.update(options or {})
    stream.options = opts
    if gop is not None:
        stream.codec_context.gop_size = gop
    if b_frames is not None:
        stream.codec_context.max_b_frames = b_frames
    if frame_times_ms is not None:
        stream.codec_context.time_base = Fraction(1, 1000)
    if codec in ("mpeg4", "mpeg2video"):
        stream.codec_context.bit_rate = 4_000_000
    if rotation is not None or hflip:
        stream.set_display_rotation(rotation or 0, hflip=hflip)
    astream = None
    if audio_seconds is not None:
        astream = container.add_stream(audio_codec, rate=audio_rate, layout="stereo")
    for i in range(num_frames):
        frame = av.VideoFrame.from_ndarray(pattern_frame(i), format="rgb24")
        if frame_times_ms is not None:
            frame.pts = frame_times_ms[i]
            frame.time_base = Fraction(1, 1000)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    if astream is not None:
        _encode_audio(container, astream, sine_stereo(audio_seconds, audio_rate), audio_rate)
    container.close()
    return path


def sine_stereo(seconds: float, rate: int) -> np.ndarray:
    """``[2, samples]`` float32: 440 Hz at 0.6 on the left, 440 Hz at 0.2 on the right."""
    t = np.arange(int(round(seconds * rate))) / rate
    tone = np.sin(2 * np.pi * 440.0 * t)
    return np.stack([0.6 * tone, 0.2 * tone]).astype(np.float32)


def _encode_audio(container, stream, samples: np.ndarray, rate: int) -> None:
    frame_size = stream.codec_context.frame_size or 1024
    fmt = stream.codec_context.format
    for start in range(0, samples.shape[1], frame_size):
        chunk = samples[:, start : start + frame_size]
        if fmt.name.startswith("s16"):
            chunk = (np.clip(chunk, -1, 1) * 32767).round().astype(np.int16)
        elif fmt.name.startswith("s32"):
            chunk = (np.clip(chunk, -1, 1) * 2147483647.0).round().astype(np.int32)
        else:
            chunk = chunk.astype(np.float32)
        if not fmt.is_planar:
            chunk = chunk.T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(chunk), format=fmt.name, layout=stream.layout.name
        )
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_audio(path: Path, samples: np.ndarray, rate: int, codec: str) -> Path:
    """Encode ``samples`` (``[channels, n]`` float32 in [-1, 1]) into an audio-only file."""
    container = av.open(str(path), mode="w")
    layout = "mono" if samples.shape[0] == 1 else "stereo"
    stream = container.add_stream(codec, rate=rate, layout=layout)
    _encode_audio(container, stream, samples, rate)
    container.close()
    return path


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """A 16-bit PCM wav written with the standard library (independent of FFmpeg)."""
    data = (np.clip(samples, -1, 1) * 32767).round().astype("<i2")
    with wavelib.open(str(path), "wb") as handle:
        handle.setnchannels(samples.shape[0])
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(data.T.tobytes())
    return path


class MediaFactory:
    """Creates test media on first use and caches them for the session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, Path] = {}

    def _make(self, key: str, build) -> Path:
        if key not in self._cache:
            self._cache[key] = build(self.root / key)
        return self._cache[key]

    def video(self, num_frames: int, fps: float = 25, ext: str = "mp4", **kwargs) -> Path:
        extra = "-".join(f"{k}={v}" for k, v in sorted(kwargs.items()) if k != "frame_times_ms")
        if "frame_times_ms" in kwargs:
            extra += "-vfr"
        key = f"v{num_frames}-{fps}-{extra}.{ext}"
        return self._make(key, lambda p: write_video(p, num_frames, fps, **kwargs))

    def speech(self) -> Path:
        """A real utterance synthesised by espeak-ng (22.05 kHz mono wav)."""
        if shutil.which("espeak-ng") is None:
            pytest.skip("espeak-ng not installed")

        def build(path: Path) -> Path:
            subprocess.run(
                ["espeak-ng", "-w", str(path), "I am so happy to see you again, this is great."],
                check=True, capture_output=True,
            )
            return path

        return self._make("speech.wav", build)
