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

Every file is opened through the media gate (:mod:`affectgpt.media.gate`): local files only,
a whitelist of container formats (no playlists or concat scripts), and :class:`MediaLimits` on
duration, frame size, stream count and decoded size; a refusal raises a
:class:`MediaRefusedError` subclass.

Face crops (OpenCV, the ``faces`` extra)::

    from affectgpt.media import crop_faces, find_main_face

    crops = crop_faces(frames, size=224)     # FaceCrops: frames [8, 224, 224, 3], boxes, found
    main = find_main_face(frames)            # the main speaker's face track, or has_face=False
    pixels = preprocess_frames(frames, face_crop=True)

The torch-based names (from :mod:`affectgpt.media.transforms`) and the face-crop names (from
:mod:`affectgpt.media.faces`) are imported on first use, so decoding works without torch and
``import affectgpt.media`` never imports OpenCV.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .audio import audio_clip_starts, audio_clips, read_audio
from .errors import (
    CorruptMediaError,
    DecodedSizeLimitError,
    DurationLimitError,
    EmptyMediaError,
    MediaError,
    MediaLimitError,
    MediaRefusedError,
    NoAudioStreamError,
    NoVideoStreamError,
    ResolutionLimitError,
    StreamCountLimitError,
    UnsupportedFormatError,
    UnsupportedProtocolError,
)
from .gate import (
    ACCEPTED_FORMATS,
    DEFAULT_LIMITS,
    MediaLimits,
    check_media,
    default_limits,
    set_default_limits,
)
from .info import MediaInfo, probe
from .video import SampledFrames, read_frames, sample_frame_indices, sample_frames

if TYPE_CHECKING:  # pragma: no cover
    from .faces import (
        FACE_CASCADE,
        FaceCrops,
        FaceTrack,
        MainFace,
        crop_faces,
        detect_faces,
        find_main_face,
        track_faces,
    )
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
    "ACCEPTED_FORMATS",
    "CLIP_MEAN",
    "CLIP_STD",
    "FACE_CASCADE",
    "IMAGEBIND_AUDIO_MEAN",
    "IMAGEBIND_AUDIO_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CorruptMediaError",
    "DEFAULT_LIMITS",
    "DecodedSizeLimitError",
    "DurationLimitError",
    "EmptyMediaError",
    "FaceCrops",
    "FaceTrack",
    "MainFace",
    "MediaError",
    "MediaInfo",
    "MediaLimitError",
    "MediaLimits",
    "MediaRefusedError",
    "NoAudioStreamError",
    "NoVideoStreamError",
    "ResolutionLimitError",
    "SampledFrames",
    "StreamCountLimitError",
    "UnsupportedFormatError",
    "UnsupportedProtocolError",
    "audio_clip_starts",
    "audio_clips",
    "check_media",
    "crop_faces",
    "default_limits",
    "detect_faces",
    "find_main_face",
    "imagebind_audio_features",
    "kaldi_fbank",
    "kaldi_mel_banks",
    "preprocess_frames",
    "probe",
    "read_audio",
    "read_frames",
    "sample_frame_indices",
    "sample_frames",
    "track_faces",
    "set_default_limits",
    "whisper_log_mel",
    "whisper_mel_filters",
]

#: Names served lazily: the torch-based ``transforms`` and the OpenCV-based ``faces``.
_LAZY = {
    **dict.fromkeys(
        (
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
        ),
        ".transforms",
    ),
    **dict.fromkeys(
        ("FACE_CASCADE", "FaceCrops", "FaceTrack", "MainFace", "crop_faces", "detect_faces",
         "find_main_face", "track_faces"),
        ".faces",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
