"""Media decoding for AffectGPT: sampled video frames, audio clips and model-input features.

Decoding (PyAV; needs no torch)::

    from affectgpt.media import probe, read_frames, read_audio

    info = probe("clip.mp4")                 # MediaInfo(duration, fps, num_frames, rotation, ...)
    frames = read_frames("clip.mp4", n=8)    # [8, H, W, 3] uint8 RGB, upright
    wave = read_audio("clip.mp4", 16000)     # [samples] float32 mono in [-1, 1]

Model inputs (torch)::

    from affectgpt.media import preprocess_frames, imagebind_audio_features, whisper_log_mel

    pixels = preprocess_frames(frames)       # [8, 3, 224, 224], CLIP mean/std
    audio = imagebind_audio_features(wave)   # [8, 1, 128, 204], ImageBind's normalisation
    mel = whisper_log_mel(wave)              # [80, 3000]

Frame and clip sampling follow the reference code (see :func:`sample_frame_indices` and
:mod:`affectgpt.media.audio`). Every failure raises a :class:`MediaError` subclass naming the
file; a missing file raises :class:`FileNotFoundError`.

The torch-based names (from :mod:`affectgpt.media.transforms`) are imported on first use, so
decoding works without torch installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .audio import audio_clip_starts, audio_clips, read_audio
from .errors import (
    CorruptMediaError,
    EmptyMediaError,
    MediaError,
    NoAudioStreamError,
    NoVideoStreamError,
)
from .info import MediaInfo, probe
from .video import SampledFrames, read_frames, sample_frame_indices, sample_frames

if TYPE_CHECKING:  # pragma: no cover
    from .transforms import (
        CLIP_MEAN,
        CLIP_STD,
        IMAGEBIND_AUDIO_MEAN,
        IMAGEBIND_AUDIO_STD,
        IMAGENET_MEAN,
        IMAGENET_STD,
        imagebind_audio_features,
        kaldi_fbank,
        kaldi_mel_banks,
        preprocess_frames,
        whisper_log_mel,
        whisper_mel_filters,
    )

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "IMAGEBIND_AUDIO_MEAN",
    "IMAGEBIND_AUDIO_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CorruptMediaError",
    "EmptyMediaError",
    "MediaError",
    "MediaInfo",
    "NoAudioStreamError",
    "NoVideoStreamError",
    "SampledFrames",
    "audio_clip_starts",
    "audio_clips",
    "imagebind_audio_features",
    "kaldi_fbank",
    "kaldi_mel_banks",
    "preprocess_frames",
    "probe",
    "read_audio",
    "read_frames",
    "sample_frame_indices",
    "sample_frames",
    "whisper_log_mel",
    "whisper_mel_filters",
]

#: Names served lazily from the torch-based ``transforms`` module.
_LAZY = frozenset(
    {
        "CLIP_MEAN",
        "CLIP_STD",
        "IMAGEBIND_AUDIO_MEAN",
        "IMAGEBIND_AUDIO_STD",
        "IMAGENET_MEAN",
        "IMAGENET_STD",
        "imagebind_audio_features",
        "kaldi_fbank",
        "kaldi_mel_banks",
        "preprocess_frames",
        "whisper_log_mel",
        "whisper_mel_filters",
    }
)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(".transforms", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
