"""Audio decoding (PyAV) and the reference's placement of fixed-length clips.

:func:`read_audio` decodes the main audio stream of any container (a video file or a plain
audio file), downmixes it to mono and resamples it with FFmpeg's resampler.

:func:`audio_clips` cuts a waveform into the clips the ImageBind audio encoder sees. The rule is
the one of the reference code (``video_llama/models/ImageBind/data.py``
``load_and_transform_audio_data`` with pytorchvideo's ``ConstantClipsPerVideoSampler``; AffectGPT
calls it with ``clips_per_video=8``):

* a waveform shorter than one clip is padded with zeros at the end to one clip (2 s);
* with ``D`` the (padded) duration in seconds and ``L`` the clip duration, clip ``k`` of ``n``
  starts at ``s_k = k * max(D - L, 0) / max(n - 1, 1)`` seconds, i.e. the clips are spread
  evenly from the start to the end of the audio, overlapping when ``D < n * L`` (for a 4 s clip
  the 8 windows of 2 s start every 2/7 s) and leaving gaps when ``D > n * L``;
* clip ``k`` holds samples ``[floor(s_k * sr), floor(s_k * sr) + L * sr)``, computed with exact
  rational arithmetic on the float duration as pytorchvideo does.

Differences to the reference, on purpose: multi-channel audio is downmixed to mono as
``mean(channels)`` (the reference's Kaldi front end silently used the first channel only), and
resampling uses FFmpeg's ``swresample`` instead of ``torchaudio.functional.resample`` (a
different windowed-sinc filter; the difference is far below the log-mel resolution).
"""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np

from ._container import (
    AV_ERRORS,
    check_not_truncated,
    declared_stream_duration,
    describe_error,
    discard_others,
)
from ._container import (
    audio_stream as _audio_stream,
)
from .errors import CorruptMediaError, EmptyMediaError
from .gate import DecodeBudget, MediaLimits, open_container

__all__ = ["audio_clip_starts", "audio_clips", "read_audio"]


def read_audio(
    path: str | os.PathLike[str], sample_rate: int | None = 16000, *,
    limits: MediaLimits | None = None,
) -> np.ndarray:
    """Decode the audio of a file as float32 mono samples in ``[-1, 1]``.

    Works on video containers (MP4, MKV, AVI, ...) and audio files (WAV, MP3, FLAC, OGG, ...).
    Channels are averaged (FFmpeg's mono downmix with its matrix normalised, so full-scale
    stereo stays in range) and the signal is resampled to ``sample_rate`` with FFmpeg's
    ``swresample``; decoders that overshoot full scale slightly (AAC, MP3) are clipped.
    Samples start with the first decoded sample: an audio stream that starts later than the
    video is not padded, and timestamp gaps are not filled (as ``torchaudio.load`` in the
    reference).

    Args:
        path: the media file.
        sample_rate: output rate in Hz (16 kHz for ImageBind and Whisper); ``None`` keeps the
            stream's own rate.
        limits: the media gate's limits (default: :func:`~affectgpt.media.default_limits`);
            the decoded duration and the returned samples are checked while decoding.

    Returns:
        ``[samples]`` float32 array.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        NoAudioStreamError: the file has no audio stream (a silent video).
        EmptyMediaError: the file is empty or the audio stream holds no samples.
        CorruptMediaError: the container is unreadable, truncated, or fails to decode.
        MediaRefusedError: the gate refused the file (format, protocol or a limit).
    """
    name, container = open_container(path, limits)
    try:
        stream = _audio_stream(container, name)
        check_not_truncated(container, name)
        discard_others(container, stream)
        chunks, source_samples, source_rate = _decode_resampled(
            container, stream, name, sample_rate, DecodeBudget(name, limits)
        )
        _check_complete(stream, name, source_samples, source_rate)
    finally:
        container.close()
    if not chunks:
        raise EmptyMediaError(name, "audio stream has no samples")
    wave = np.concatenate(chunks).astype(np.float32, copy=False)
    if wave.size == 0:
        raise EmptyMediaError(name, "audio stream has no samples")
    np.clip(wave, -1.0, 1.0, out=wave)
    return wave


def _decode_resampled(container, stream, name: str, sample_rate: int | None,
                      budget: DecodeBudget):
    chunks: list[np.ndarray] = []
    source_samples = 0
    source_rate = stream.rate or 0
    resampler = None
    setup = None
    seconds = 0.0  # decoded so far (a stream may change its sample rate midway)

    def keep(planes: list[np.ndarray]) -> None:
        budget.keep(sum(p.nbytes for p in planes), "the audio samples")
        chunks.extend(planes)

    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                source_samples += frame.samples
                source_rate = frame.sample_rate or source_rate
                if frame.sample_rate:
                    seconds += frame.samples / frame.sample_rate
                    budget.check_seconds(seconds, "the audio stream")
                key = (frame.format.name, frame.layout.name, frame.sample_rate)
                if key != setup:  # first frame, or the stream changed its parameters
                    if resampler is not None:
                        keep(_planes(resampler.resample(None)))
                    resampler = _make_resampler(sample_rate or frame.sample_rate)
                    setup = key
                frame.pts = None  # resample by sample count; timestamps gaps are not filled
                keep(_planes(resampler.resample(frame)))
        if resampler is not None:
            keep(_planes(resampler.resample(None)))
    except AV_ERRORS as exc:
        raise CorruptMediaError(name, f"audio decoding failed ({describe_error(exc)})") from exc
    return chunks, source_samples, source_rate


def _make_resampler(rate: int) -> av.AudioResampler:
    # rematrix_maxval=1 normalises the downmix matrix (stereo -> (L + R) / 2); without it a
    # float output keeps FFmpeg's unnormalised 0.707 * (L + R), which can exceed full scale.
    return av.AudioResampler(
        format="flt", layout="mono", rate=rate, options={"rematrix_maxval": "1.0"}
    )


def _planes(frames) -> list[np.ndarray]:
    return [frame.to_ndarray().reshape(-1) for frame in frames]


def _check_complete(stream, name: str, samples: int, rate: int) -> None:
    """Raise when far fewer samples were decoded than the container declares (truncation).

    (``stream.frames`` is not used: for audio it counts samples in some containers.)
    """
    declared = declared_stream_duration(stream)
    if declared and rate:
        present = samples / rate
        if present < declared - max(1.0, 0.1 * declared):
            raise CorruptMediaError(
                name, f"file is truncated: audio stream declares {declared:.2f} s, "
                f"only {present:.2f} s present",
            )


def audio_clip_starts(
    num_samples: int, sample_rate: int = 16000, n_clips: int = 8, clip_seconds: float = 2.0
) -> list[int]:
    """First sample of each clip under the reference's clip placement (see the module doc).

    ``num_samples`` is the length before padding; a waveform shorter than one clip counts as
    exactly one clip long.
    """
    if n_clips < 1:
        raise ValueError(f"n_clips must be >= 1, got {n_clips}")
    clip_samples = _clip_samples(sample_rate, clip_seconds)
    num_samples = max(num_samples, clip_samples)
    duration = Fraction(num_samples / sample_rate)  # the float duration, as the reference
    clip = Fraction(clip_seconds)
    latest = max(duration - clip, Fraction(0))
    spacing = latest / max(n_clips - 1, 1)
    return [int(k * spacing * sample_rate) for k in range(n_clips)]


def audio_clips(
    wave: np.ndarray, sample_rate: int = 16000, n_clips: int = 8, clip_seconds: float = 2.0
) -> np.ndarray:
    """Cut a mono waveform into ``n_clips`` clips of ``clip_seconds`` (reference placement).

    Args:
        wave: ``[samples]`` mono waveform (e.g. from :func:`read_audio`).
        sample_rate: its rate in Hz.
        n_clips: number of clips (8 in AffectGPT).
        clip_seconds: clip length in seconds (2 s for ImageBind).

    Returns:
        ``[n_clips, clip_seconds * sample_rate]`` array of the same dtype as ``wave``; audio
        shorter than one clip is zero-padded at the end first.
    """
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise ValueError(f"expected a mono waveform [samples], got shape {wave.shape}")
    clip_samples = _clip_samples(sample_rate, clip_seconds)
    if wave.size < clip_samples:
        wave = np.concatenate([wave, np.zeros(clip_samples - wave.size, dtype=wave.dtype)])
    starts = audio_clip_starts(wave.size, sample_rate, n_clips, clip_seconds)
    return np.stack([wave[s : s + clip_samples] for s in starts])


def _clip_samples(sample_rate: int, clip_seconds: float) -> int:
    samples = clip_seconds * sample_rate
    if samples <= 0 or abs(samples - round(samples)) > 1e-6:
        raise ValueError(
            f"clip_seconds * sample_rate must be a positive whole number of samples, "
            f"got {clip_seconds} * {sample_rate}"
        )
    return int(round(samples))
