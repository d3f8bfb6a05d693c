"""Choosing streams with PyAV and mapping failures to typed errors (containers are opened by
:mod:`affectgpt.media.gate`)."""

from __future__ import annotations

import errno
import os
import re
from fractions import Fraction

import av
import av.error

from .errors import CorruptMediaError, EmptyMediaError, NoAudioStreamError, NoVideoStreamError

#: Exceptions PyAV/FFmpeg raise for unreadable input.
AV_ERRORS: tuple[type[BaseException], ...] = (av.error.FFmpegError, EOFError)


def check_path(path: str | os.PathLike[str]) -> str:
    """Return ``path`` as ``str`` after checking that it is a non-empty regular file.

    Raises:
        FileNotFoundError: the path does not exist.
        IsADirectoryError: the path is a directory.
        EmptyMediaError: the file has zero bytes.
    """
    name = os.fspath(path)
    if not os.path.exists(name):
        raise FileNotFoundError(errno.ENOENT, "No such media file", name)
    if os.path.isdir(name):
        raise IsADirectoryError(errno.EISDIR, "Expected a media file, got a directory", name)
    if os.path.getsize(name) == 0:
        raise EmptyMediaError(name, "file is empty (0 bytes)")
    return name


def _describe(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def describe_error(exc: BaseException) -> str:
    """A short description of a PyAV exception for error messages."""
    return _describe(exc)


def _is_attached_picture(stream: av.stream.Stream) -> bool:
    # Cover art in audio files (MP3/M4A/FLAC) shows up as a one-frame "video" stream.
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _pick(streams: list) -> object | None:
    if not streams:
        return None
    for stream in streams:
        if stream.disposition & av.stream.Disposition.default:
            return stream
    return streams[0]


def video_stream(container: av.container.InputContainer, name: str, *, required: bool = True):
    """The main video stream (default disposition first, cover art ignored)."""
    stream = _pick([s for s in container.streams.video if not _is_attached_picture(s)])
    if stream is None and required:
        raise NoVideoStreamError(name, "no video stream (is it an audio-only file?)")
    return stream


def audio_stream(container: av.container.InputContainer, name: str, *, required: bool = True):
    """The main audio stream (default disposition first)."""
    stream = _pick(list(container.streams.audio))
    if stream is None and required:
        raise NoAudioStreamError(name, "no audio stream")
    return stream


def discard_others(container: av.container.InputContainer, keep) -> None:
    """Tell the demuxer to drop every stream but ``keep`` (saves reading their packets)."""
    for stream in container.streams:
        if stream.index != keep.index:
            stream.discard = av.stream.Discard.all


def seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


_DURATION_TAG = re.compile(r"^(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$")


#: Formats whose headers state stream durations exactly (rather than FFmpeg estimating them
#: from the bit rate), so a stream much shorter than declared is a truncated file.
_DECLARED_DURATION_FORMATS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "wav"})


def declared_stream_duration(stream) -> float | None:
    """Duration a stream declares in its header, in seconds, or ``None``.

    Only for formats that store it exactly: MP4/MOV and WAV (``stream.duration``) and
    Matroska/WebM (the per-track ``DURATION`` tag FFmpeg and mkvmerge write). Elsewhere
    (MP3, AVI, MPEG-TS, ...) FFmpeg may estimate durations from the bit rate.
    """
    if stream.container.format.name not in _DECLARED_DURATION_FORMATS:
        return None
    duration = seconds(stream.duration, stream.time_base)
    if duration:
        return duration
    for key, value in stream.metadata.items():
        if key.upper() == "DURATION":
            match = _DURATION_TAG.match(value.strip())
            if match:
                hours, minutes, secs = match.groups()
                return int(hours) * 3600 + int(minutes) * 60 + float(secs)
    return None


def check_not_truncated(container: av.container.InputContainer, name: str) -> None:
    """Raise :class:`CorruptMediaError` when the container's index points past the file's end.

    MP4/MOV (and AVI) carry a sample index; in a file cut short (an interrupted copy or
    download) its last entries lie beyond the last byte. A WAV file states the size of its
    sample data (FFmpeg silently clamps it to the file). This check costs no decoding.
    """
    size = os.path.getsize(name)
    if container.format.name == "wav":
        _check_wav_data_chunk(name, size)
    for stream in container.streams:
        entries = stream.index_entries
        count = len(entries)
        if count == 0:
            continue
        end = 0
        for i in range(max(0, count - 16), count):
            entry = entries[i]
            if entry.pos >= 0:
                end = max(end, entry.pos + entry.size)
        if end > size:
            raise CorruptMediaError(
                name,
                f"file is truncated: stream {stream.index} needs {end} bytes, file has {size}",
            )


def _check_wav_data_chunk(name: str, size: int) -> None:
    with open(name, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return  # RF64/BW64 or unusual: nothing to check
        offset = 12
        while True:
            handle.seek(offset)
            chunk = handle.read(8)
            if len(chunk) < 8:
                return
            chunk_id, chunk_size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):
                    return  # written by a streaming encoder that never patched the size
                if offset + 8 + chunk_size > size:
                    raise CorruptMediaError(
                        name,
                        f"file is truncated: WAV data chunk needs {offset + 8 + chunk_size} "
                        f"bytes, file has {size}",
                    )
                return
            offset += 8 + chunk_size + (chunk_size & 1)
