"""Display orientation of video frames (display matrix / legacy ``rotate`` tag)."""

from __future__ import annotations

import functools
import struct

import numpy as np


def legacy_rotate_tag(stream) -> int:
    """The legacy ``rotate`` stream tag (clockwise degrees) that old muxers wrote, or 0."""
    value = stream.metadata.get("rotate", "0")
    try:
        return int(round(float(value))) % 360
    except ValueError:
        return 0


def orient(image: np.ndarray, rotation: int, mirrored: bool = False) -> np.ndarray:
    """Mirror ``image`` (``[H, W, ...]``) left-right if asked, then rotate it counter-clockwise
    by ``rotation`` degrees (a multiple of 90)."""
    if mirrored:
        image = image[:, ::-1]
    return np.rot90(image, (rotation // 90) % 4)


def display_matrix(frame) -> tuple[int, ...] | None:
    """The DISPLAYMATRIX side data of a decoded frame (FFmpeg copies the stream's onto every
    frame), as nine integers, or ``None``."""
    side_data = frame.side_data
    if "DISPLAYMATRIX" not in side_data:
        return None
    raw = bytes(side_data["DISPLAYMATRIX"])
    if len(raw) < 36:
        return None
    return struct.unpack("<9i", raw[:36])


@functools.lru_cache(maxsize=64)
def display_orientation(matrix: tuple[int, ...]) -> tuple[int, bool]:
    """Decompose an FFmpeg display matrix into ``(rotation, mirrored)``.

    The matrix (nine 32-bit values, 16.16 fixed point, row-major) maps a stored pixel
    ``(x, y)`` (y pointing down) to its display position ``(a*x + c*y, b*x + d*y)`` with
    ``a, b, c, d = m[0], m[1], m[3], m[4]``. It is rounded to the nearest of the eight
    axis-aligned orientations and written as "mirror left-right if ``mirrored``, then rotate
    counter-clockwise by ``rotation`` degrees" (0, 90, 180 or 270) -- the picture ffmpeg's
    ``autorotate`` shows.
    """
    a, b, c, d = (float(matrix[i]) for i in (0, 1, 3, 4))
    probe = np.arange(6).reshape(2, 3)
    shown = probe
    if abs(a) + abs(d) >= abs(b) + abs(c):  # x' = a*x, y' = d*y
        if a < 0:
            shown = shown[:, ::-1]
        if d < 0:
            shown = shown[::-1]
    else:  # x' = c*y, y' = b*x: the picture is transposed
        shown = shown.T
        if c < 0:
            shown = shown[:, ::-1]
        if b < 0:
            shown = shown[::-1]
    for mirrored in (False, True):
        for rotation in (0, 90, 180, 270):
            candidate = orient(probe, rotation, mirrored)
            if candidate.shape == shown.shape and (candidate == shown).all():
                return rotation, mirrored
    raise AssertionError("unreachable: the dihedral group has eight elements")  # pragma: no cover
