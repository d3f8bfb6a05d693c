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
    "EmptyMediaError",
    "MediaError",
    "NoAudioStreamError",
    "NoVideoStreamError",
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
