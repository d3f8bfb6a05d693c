"""The one gate every media file passes before FFmpeg reads it.

FFmpeg picks its demuxer from the file's content, not its name, and some demuxers open
other files or URLs: an HLS playlist (``#EXTM3U``) fetches the segments it lists, over
HTTP if they are URLs; a ``ffconcat`` script reads the files it names. An upload called
``clip.mp4`` (or ``clip.m3u8``) can therefore make the server read other files or send
requests. Every reader of this package (:func:`~affectgpt.media.probe`,
:func:`~affectgpt.media.read_frames`, :func:`~affectgpt.media.read_audio`, and through them
the web demo, ``describe``, ``infer``, ``features``, ``annotate`` and ``import-videos``)
opens files through :func:`open_container`, which

1. refuses URLs and FFmpeg protocols (``http://``, ``concat:``, ``pipe:``, ...): only local
   files are read, and FFmpeg is handed ``file:<absolute path>`` with
   ``protocol_whitelist=file``, so no demuxer can open anything but local files;
2. refuses playlists and concat scripts by their first bytes, and lets FFmpeg use only the
   demuxers of :data:`ACCEPTED_FORMATS` (``format_whitelist``), checked again on the opened
   container;
3. checks the header against :class:`MediaLimits`: number of streams, frame size, declared
   duration;
4. makes the video decoders refuse pictures larger than ``max_pixels`` (a stream may change
   its frame size midway).

While decoding, the readers keep a :class:`DecodeBudget`: the decoded duration and the size of
the decoded frames or samples a call keeps are checked as they grow, so a header that
understates them does not help either. Every refusal raises a typed
:class:`~affectgpt.media.MediaRefusedError` naming the file.

The limits default to :data:`DEFAULT_LIMITS`; pass ``limits=`` to a reader, or change the
process-wide default with :func:`set_default_limits` (for a server or a CLI option)::

    from affectgpt.media import MediaLimits, read_frames, set_default_limits

    frames = read_frames("long_interview.mp4", limits=MediaLimits(max_duration=4 * 3600))
    set_default_limits(MediaLimits(max_streams=32))
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from dataclasses import dataclass

import av
import av.error

from ._container import AV_ERRORS, check_path, describe_error
from .errors import (
    CorruptMediaError,
    DecodedSizeLimitError,
    DurationLimitError,
    EmptyMediaError,
    ResolutionLimitError,
    StreamCountLimitError,
    UnsupportedFormatError,
    UnsupportedProtocolError,
)

__all__ = [
    "ACCEPTED_FORMATS",
    "DEFAULT_LIMITS",
    "DecodeBudget",
    "MediaLimits",
    "check_media",
    "default_limits",
    "open_container",
    "set_default_limits",
    "video_decode_error",
]

#: FFmpeg demuxers (short names) the gate lets FFmpeg use: MP4/MOV/M4A/3GP, Matroska/WebM,
#: AVI, FLV, MPEG program and transport streams, and the audio formats WAV, FLAC, MP3,
#: Ogg (Vorbis/Opus), raw AAC and AIFF. Not on it, among others: ``hls``, ``concat``,
#: ``dash``, image sequences (``image2``), ``tty``/text, devices and raw elementary streams.
ACCEPTED_FORMATS: frozenset[str] = frozenset({
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2",
    "matroska", "webm",
    "avi", "flv", "mpeg", "mpegts",
    "wav", "flac", "mp3", "ogg", "aac", "aiff",
})


@dataclass(frozen=True)
class MediaLimits:
    """What the gate accepts. The defaults suit emotion clips (seconds to minutes long) with
    a wide margin; raise a limit for long recordings.

    Attributes:
        max_duration: seconds of media, as declared by the container or as decoded
            (default 30 minutes).
        max_width, max_height: pixels of a video stream's frames (default 8192 each).
        max_pixels: ``width * height`` of one frame (default 8192 x 4320, DCI 8K); also
            given to the video decoders, which then refuse larger pictures midway.
        max_streams: streams in the container (default 16; a film with a few audio and
            subtitle tracks has well under that).
        max_decoded_bytes: the most decoded data one read keeps in memory: the frames
            :func:`~affectgpt.media.read_frames` returns (RGB, 3 bytes a pixel) or the
            samples :func:`~affectgpt.media.read_audio` returns (float32), default 1 GiB.
        formats: FFmpeg demuxer names allowed (default :data:`ACCEPTED_FORMATS`).
    """

    max_duration: float = 30 * 60.0
    max_width: int = 8192
    max_height: int = 8192
    max_pixels: int = 8192 * 4320
    max_streams: int = 16
    max_decoded_bytes: int = 2**30
    formats: frozenset[str] = ACCEPTED_FORMATS

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "formats":
                if isinstance(value, str) or not value:
                    raise ValueError("formats must be a non-empty set of FFmpeg demuxer names")
                object.__setattr__(self, "formats", frozenset(value))
                bad = [f for f in self.formats if not re.fullmatch(r"[a-z0-9_]+", f)]
                if bad:
                    raise ValueError(f"not FFmpeg demuxer names: {sorted(bad)}")
                if self.formats & _NEVER_ACCEPTED:
                    raise ValueError(f"these demuxers open other files or URLs and cannot be "
                                     f"allowed: {sorted(self.formats & _NEVER_ACCEPTED)}")
            elif not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"MediaLimits.{field.name} must be a positive number, "
                                 f"got {value!r}")


#: Demuxers that read other files or URLs named in their input.
_NEVER_ACCEPTED = frozenset({"hls", "applehttp", "concat", "dash", "image2", "imagepipe",
                             "tee", "lavfi", "sdp", "rtsp", "rtp", "mpjpeg"})

#: The limits used when a reader gets ``limits=None``.
DEFAULT_LIMITS = MediaLimits()

_default = DEFAULT_LIMITS
_default_lock = threading.Lock()


def default_limits() -> MediaLimits:
    """The process-wide limits used when a reader is not given any."""
    return _default


def set_default_limits(limits: MediaLimits | None) -> MediaLimits:
    """Replace the process-wide default limits (``None``: back to :data:`DEFAULT_LIMITS`);
    returns the previous ones."""
    global _default
    if limits is not None and not isinstance(limits, MediaLimits):
        raise TypeError(f"expected MediaLimits, got {type(limits).__name__}")
    with _default_lock:
        previous, _default = _default, limits or DEFAULT_LIMITS
    return previous


def _resolve(limits: MediaLimits | None) -> MediaLimits:
    return _default if limits is None else limits


# ----------------------------------------------------------------------------- paths

#: ``scheme:`` or ``proto,options:`` prefixes FFmpeg reads as a protocol. One letter is a
#: Windows drive (``C:``), not a protocol.
_PROTOCOL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+(,[^:/]*)?:")


def _refuse_urls(name: str) -> None:
    if "\x00" in name:
        raise UnsupportedProtocolError(name.replace("\x00", "\\0"), "path holds a NUL byte")
    if _PROTOCOL.match(name) and not os.path.lexists(name):
        scheme = name.split(":", 1)[0]
        raise UnsupportedProtocolError(
            name, f"{scheme!r} is a URL or an FFmpeg protocol; only local files are read"
        )


# ----------------------------------------------------------------------------- content

#: First bytes of text files FFmpeg would follow to other files or URLs.
_TEXT_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"#extm3u", "an HLS/M3U playlist"),
    (b"ffconcat", "an FFmpeg concat script"),
    (b"[playlist]", "a PLS playlist"),
    (b"<?xml", "an XML file (DASH manifest, SMIL or similar)"),
    (b"<mpd", "a DASH manifest"),
)


def _refuse_playlists(name: str) -> None:
    with open(name, "rb") as handle:
        head = handle.read(64)
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    for signature, what in _TEXT_SIGNATURES:
        if head.startswith(signature):
            raise UnsupportedFormatError(
                name, f"the file is {what}; playlists and scripts that refer to other media "
                "are not accepted (give the media file itself)",
            )


def _accepted(format_name: str, limits: MediaLimits) -> bool:
    return bool(set(format_name.split(",")) & limits.formats)


# ----------------------------------------------------------------------------- opening


def open_container(
    path: str | os.PathLike[str], limits: MediaLimits | None = None
) -> tuple[str, av.container.InputContainer]:
    """Open a local media file through the gate; return ``(name, container)``.

    ``name`` is ``path`` as ``str`` (for error messages). The caller closes the container.

    Raises:
        UnsupportedProtocolError: ``path`` is a URL or FFmpeg protocol, not a local file.
        FileNotFoundError, IsADirectoryError: as for any file.
        EmptyMediaError: the file has zero bytes or no streams.
        UnsupportedFormatError: a playlist, a concat script, or a container format not in
            ``limits.formats``.
        StreamCountLimitError, ResolutionLimitError, DurationLimitError: the header
            exceeds ``limits``.
        CorruptMediaError: FFmpeg cannot read the container.
    """
    limits = _resolve(limits)
    name = os.fspath(path)
    _refuse_urls(name)
    name = check_path(name)
    _refuse_playlists(name)
    try:
        container = av.open(
            "file:" + os.path.abspath(name), mode="r", metadata_errors="replace",
            container_options={"format_whitelist": ",".join(sorted(limits.formats)),
                               "protocol_whitelist": "file"},
            # FFmpeg decodes a frame or two while probing the streams: cap their size there
            # too (a stream whose pictures are over the cap then reports a 0 x 0 size, and
            # decoding it fails with EINVAL, see video_decode_error).
            options={"max_pixels": str(limits.max_pixels)},
        )
    except (av.error.EOFError, EOFError) as exc:
        # The demuxer hit the end of the file while looking for the first packets.
        raise EmptyMediaError(name, "no media data after the container header") from exc
    except av.error.ArgumentError as exc:
        # The file was recognised (probing succeeded) but its demuxer is not whitelisted.
        raise UnsupportedFormatError(
            name, "its container format is not one of the accepted formats "
            f"({', '.join(sorted(limits.formats))}); FFmpeg said: {describe_error(exc)}",
        ) from exc
    except AV_ERRORS as exc:
        raise CorruptMediaError(name, f"cannot open container ({describe_error(exc)})") from exc
    try:
        _check_header(name, container, limits)
    except BaseException:
        container.close()
        raise
    return name, container


def check_media(path: str | os.PathLike[str], limits: MediaLimits | None = None) -> None:
    """Raise the gate's error for ``path`` if it would be refused; decode nothing.

    Costs one container open (the header and FFmpeg's stream probing). Raises what
    :func:`open_container` raises.
    """
    _, container = open_container(path, limits)
    container.close()


def _check_header(name: str, container, limits: MediaLimits) -> None:
    format_name = container.format.name
    if not _accepted(format_name, limits):
        raise UnsupportedFormatError(name, f"container format {format_name!r} is not accepted")
    streams = list(container.streams)
    if not streams:
        raise EmptyMediaError(name, "container holds no streams")
    if len(streams) > limits.max_streams:
        raise StreamCountLimitError(
            name, f"{len(streams)} streams, more than max_streams={limits.max_streams}",
            len(streams), limits.max_streams)
    for stream in container.streams.video:
        context = stream.codec_context
        if context is None:
            continue
        _check_size(name, context.width, context.height, limits, f"video stream {stream.index}")
        context.options = {**(context.options or {}), "max_pixels": str(limits.max_pixels)}
    duration = _declared_duration(container)
    if duration is not None and duration > limits.max_duration:
        raise DurationLimitError(
            name, f"declares {duration:.1f} s, longer than max_duration="
            f"{limits.max_duration:g} s", duration, limits.max_duration)


def video_decode_error(name: str, exc: BaseException, stream=None) -> Exception:
    """The typed error for a failure while decoding video (``stream``: the video stream).

    A decoder answers EINVAL (``av.error.ArgumentError``) to a picture whose size it refuses:
    over the ``max_pixels`` cap the gate gives every video decoder, or impossible. And when a
    header declares a size over the cap, FFmpeg discards it while probing (the stream then
    reports 0 x 0) and decoding fails. Both are a :class:`ResolutionLimitError`; anything
    else is corrupt data.
    """
    if isinstance(exc, av.error.ArgumentError):
        return ResolutionLimitError(
            name, "the video decoder refused a picture larger than the max_pixels limit "
            f"(or of impossible size) ({describe_error(exc)})", limit="max_pixels")
    context = getattr(stream, "codec_context", None)
    if context is not None and not (context.width and context.height):
        return ResolutionLimitError(
            name, "the video stream has no usable frame size: the declared one is over the "
            f"max_pixels limit or impossible ({describe_error(exc)})", limit="max_pixels")
    return CorruptMediaError(name, f"video decoding failed ({describe_error(exc)})")


def _check_size(name: str, width: int, height: int, limits: MediaLimits, what: str) -> None:
    for value, maximum, limit in ((width, limits.max_width, "max_width"),
                                  (height, limits.max_height, "max_height"),
                                  (width * height, limits.max_pixels, "max_pixels")):
        if value > maximum:
            raise ResolutionLimitError(
                name, f"{what} has {width}x{height} frames, over {limit}={maximum}",
                value, maximum, limit)


def _declared_duration(container) -> float | None:
    found = []
    if container.duration is not None and container.duration > 0:
        found.append(container.duration / 1_000_000)
    for stream in container.streams:
        if stream.duration is not None and stream.duration > 0 and stream.time_base:
            found.append(float(stream.duration * stream.time_base))
    return max(found) if found else None


# ----------------------------------------------------------------------------- decoding


class DecodeBudget:
    """Checks what one read decodes against the limits, as it goes.

    Args:
        name: the file (for error messages).
        limits: the limits (``None``: the process-wide default).
    """

    def __init__(self, name: str, limits: MediaLimits | None = None) -> None:
        self.name = name
        self.limits = _resolve(limits)
        self.kept_bytes = 0

    def check_seconds(self, seconds: float, what: str = "media") -> None:
        """Raise :class:`DurationLimitError` when ``seconds`` of ``what`` exceed the limit."""
        if seconds > self.limits.max_duration:
            raise DurationLimitError(
                self.name, f"{what} runs past max_duration={self.limits.max_duration:g} s "
                f"({seconds:.1f} s decoded or declared)", seconds, self.limits.max_duration)

    def check_frame(self, width: int, height: int, what: str = "video") -> None:
        """Raise :class:`ResolutionLimitError` for a frame larger than the limits."""
        _check_size(self.name, width, height, self.limits, what)

    def check_kept(self, nbytes: int, what: str) -> None:
        """Raise :class:`DecodedSizeLimitError` when keeping ``nbytes`` would exceed the limit."""
        if nbytes > self.limits.max_decoded_bytes:
            raise DecodedSizeLimitError(
                self.name, f"{what} would take {nbytes / 2**20:.0f} MiB decoded, over "
                f"max_decoded_bytes={self.limits.max_decoded_bytes / 2**20:.0f} MiB",
                nbytes, self.limits.max_decoded_bytes)

    def keep(self, nbytes: int, what: str) -> None:
        """Count ``nbytes`` more of decoded data kept; raise past the limit."""
        self.check_kept(self.kept_bytes + nbytes, what)
        self.kept_bytes += nbytes

