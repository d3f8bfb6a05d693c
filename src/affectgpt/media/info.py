"""Stream metadata of a media file (:func:`probe`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ._container import (
    AV_ERRORS,
    audio_stream,
    check_not_truncated,
    describe_error,
    discard_others,
    seconds,
    video_stream,
)
from ._orientation import display_matrix, display_orientation, legacy_rotate_tag
from .errors import CorruptMediaError, MediaError
from .gate import MediaLimits, open_container, video_decode_error

__all__ = ["MediaInfo", "probe"]


@dataclass
class MediaInfo:
    """What :func:`probe` found in a file.

    Attributes:
        path: the file.
        duration: container duration in seconds (the longest stream).
        has_video: the file has a video stream (cover art of audio files does not count).
        has_audio: the file has an audio stream.
        fps: average frame rate of the video stream, or ``None``.
        num_frames: frames in the video stream: the container's count where it has one
            (MP4/MOV/AVI), else ``round(duration * fps)`` -- an estimate -- unless
            ``probe(..., count_frames=True)``, which counts the packets exactly as
            :func:`~affectgpt.media.read_frames` does. ``None`` without video or when
            unknown.
        width, height: size of the frames :func:`~affectgpt.media.read_frames` returns,
            i.e. in display orientation (swapped for 90/270 degree rotations).
        rotation: counter-clockwise rotation in degrees (0, 90, 180, 270) applied to the
            stored pictures (after a left-right mirror if ``mirrored``) to show them upright,
            from the display matrix (equal to ffprobe's ``rotation`` modulo 360 when there is
            no mirroring) or the legacy ``rotate`` tag.
        sample_rate: audio sample rate in Hz, or ``None``.
        mirrored: the display matrix also mirrors the picture.
        video_codec, audio_codec: codec names, or ``None``.
        audio_channels: number of audio channels, or ``None``.
        format: container format name as FFmpeg reports it (e.g. ``"mov,mp4,m4a,3gp,3g2,mj2"``).
    """

    path: str
    duration: float
    has_video: bool
    has_audio: bool
    fps: float | None
    num_frames: int | None
    width: int | None
    height: int | None
    rotation: int
    sample_rate: int | None
    mirrored: bool = False
    video_codec: str | None = None
    audio_codec: str | None = None
    audio_channels: int | None = None
    format: str = ""


def probe(
    path: str | os.PathLike[str], *, count_frames: bool = False, limits: MediaLimits | None = None
) -> MediaInfo:
    """Read the stream metadata of a media file.

    Decodes at most the first video frame (to read its display matrix); with
    ``count_frames=True`` and a container without a frame count it also demuxes the video
    packets (no decoding) to count frames exactly. The file is opened through the media gate
    (:mod:`affectgpt.media.gate`) with ``limits`` (default: :func:`default_limits`).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        EmptyMediaError: the file has zero bytes.
        CorruptMediaError: the container cannot be read or is truncated.
        MediaRefusedError: the gate refused the file (format, protocol or a limit).
        MediaError: the file has neither audio nor video.
    """
    name, container = open_container(path, limits)
    try:
        check_not_truncated(container, name)
        video = video_stream(container, name, required=False)
        audio = audio_stream(container, name, required=False)
        if video is None and audio is None:
            raise MediaError(name, "no audio or video stream")
        duration = seconds(container.duration, _AV_TIME_BASE)
        if not duration:
            durations = [
                seconds(s.duration, s.time_base) for s in (video, audio) if s is not None
            ]
            duration = max((d for d in durations if d), default=0.0)

        info = MediaInfo(
            path=name,
            duration=float(duration or 0.0),
            has_video=video is not None,
            has_audio=audio is not None,
            fps=None,
            num_frames=None,
            width=None,
            height=None,
            rotation=0,
            sample_rate=None,
            format=container.format.name,
        )
        if audio is not None:
            info.sample_rate = audio.rate or None
            info.audio_codec = audio.codec_context.name
            info.audio_channels = audio.channels or None
        if video is not None:
            rate = video.average_rate or video.guessed_rate
            info.fps = float(rate) if rate else None
            info.video_codec = video.codec_context.name
            width, height = video.codec_context.width, video.codec_context.height
            discard_others(container, video)
            frame = _first_frame(container, video, name)
            matrix = display_matrix(frame) if frame is not None else None
            if matrix is not None:
                info.rotation, info.mirrored = display_orientation(matrix)
            else:
                info.rotation = (-legacy_rotate_tag(video)) % 360 // 90 * 90
            if frame is not None:
                width, height = frame.width, frame.height
            if video.frames > 0:
                info.num_frames = video.frames
            elif count_frames:
                info.num_frames = _count_packets(name, limits)
            elif info.fps:
                video_duration = seconds(video.duration, video.time_base) or info.duration
                if video_duration > 0:
                    info.num_frames = max(1, int(round(video_duration * info.fps)))
            if info.rotation in (90, 270):
                width, height = height, width
            info.width, info.height = (width or None), (height or None)
        return info
    finally:
        container.close()


_AV_TIME_BASE = 1 / 1_000_000


def _first_frame(container, stream, name: str):
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                return frame
    except AV_ERRORS as exc:
        raise video_decode_error(name, exc, stream) from exc
    return None


def _count_packets(name: str, limits: MediaLimits | None) -> int:
    _, container = open_container(name, limits)
    try:
        stream = video_stream(container, name)
        discard_others(container, stream)
        return sum(1 for p in container.demux(stream) if p.size and not p.is_discard)
    except AV_ERRORS as exc:
        raise CorruptMediaError(name, f"cannot read video packets ({describe_error(exc)})") from exc
    finally:
        container.close()
