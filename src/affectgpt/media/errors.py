"""Typed errors raised by :mod:`affectgpt.media`.

Every failure to read a media file raises a :class:`MediaError` subclass that names the file
and says why, so a data loader can log the offending sample and decide what to do (the
reference code silently swapped in a random sample; this package never does). A path that does
not exist raises the built-in :class:`FileNotFoundError` instead.
"""

from __future__ import annotations

import os

__all__ = [
    "CorruptMediaError",
    "DecodedSizeLimitError",
    "DurationLimitError",
    "EmptyMediaError",
    "MediaError",
    "MediaLimitError",
    "MediaRefusedError",
    "NoAudioStreamError",
    "NoVideoStreamError",
    "ResolutionLimitError",
    "StreamCountLimitError",
    "UnsupportedFormatError",
    "UnsupportedProtocolError",
]


class MediaError(Exception):
    """A media file could not be used.

    Attributes:
        path: the file, as given by the caller (``str``).
        reason: a short human-readable explanation.

    ``str(error)`` is ``"<path>: <reason>"``. The constructor also accepts a single
    pre-formatted message (``MediaError("msg")``) so that frameworks that re-create exceptions
    from a message string (for example PyTorch's ``DataLoader`` workers) keep working, and the
    errors survive pickling.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str = "") -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(self.path, reason)

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.reason else self.path


class CorruptMediaError(MediaError):
    """The container is unreadable, truncated, or its streams fail to decode."""


class NoVideoStreamError(MediaError):
    """Frames were requested from a file that has no video stream (an audio-only file)."""


class NoAudioStreamError(MediaError):
    """Audio was requested from a file that has no audio stream."""


class EmptyMediaError(MediaError):
    """The file is empty (zero bytes) or the stream holds no decodable frames or samples."""


class MediaRefusedError(MediaError):
    """The media gate (:mod:`affectgpt.media.gate`) refused the file before decoding it all.

    The file may be perfectly valid; it is outside what this package opens (a format not on
    the whitelist, a URL, a playlist) or beyond the configured
    :class:`~affectgpt.media.gate.MediaLimits`.
    """


class UnsupportedFormatError(MediaRefusedError):
    """The container format is not on the whitelist (playlists, concat scripts, images, ...)."""


class UnsupportedProtocolError(MediaRefusedError):
    """The path is a URL or an FFmpeg protocol (``http://``, ``concat:``, ``pipe:``, ...):
    only local files are read."""


class MediaLimitError(MediaRefusedError):
    """The file exceeds one of the :class:`~affectgpt.media.gate.MediaLimits`.

    Attributes:
        limit: the name of the :class:`MediaLimits` field that was exceeded
            (e.g. ``"max_duration"``).
        value: the value found (seconds, pixels, streams or bytes).
        maximum: the limit's value.
    """

    limit_name = ""

    def __init__(self, path: str | os.PathLike[str], reason: str = "",
                 value: float | None = None, maximum: float | None = None,
                 limit: str | None = None) -> None:
        super().__init__(path, reason)
        self.limit = limit or self.limit_name or None
        self.value = value
        self.maximum = maximum

    def __reduce__(self):
        return (type(self), (self.path, self.reason, self.value, self.maximum, self.limit))


class DurationLimitError(MediaLimitError):
    """Longer than ``MediaLimits.max_duration`` (declared by the container, or decoded)."""

    limit_name = "max_duration"


class ResolutionLimitError(MediaLimitError):
    """Frames wider, taller or with more pixels than the limits allow (``limit`` says which of
    ``max_width``, ``max_height``, ``max_pixels``)."""

    limit_name = "max_pixels"


class StreamCountLimitError(MediaLimitError):
    """More streams than ``MediaLimits.max_streams``."""

    limit_name = "max_streams"


class DecodedSizeLimitError(MediaLimitError):
    """The decoded frames or samples would exceed ``MediaLimits.max_decoded_bytes``."""

    limit_name = "max_decoded_bytes"
