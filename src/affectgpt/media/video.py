"""Uniform frame sampling from video files with PyAV.

The reference pipeline (Video-LLaMA / AffectGPT, via ``decord``) numbers the frames of a video
by presentation order: frame ``i`` is the ``i``-th smallest presentation timestamp among the
video stream's packets. It then samples ``n`` indices with :func:`sample_frame_indices`. This
module returns exactly those frames, decoding as little as possible:

1. **Frame table.** When the container has a complete sample index with constant frame
   spacing (MP4/MOV/AVI written at a constant frame rate) the table is computed from the header
   without reading packets; otherwise (Matroska/WebM, variable frame rate, missing counts) the
   video packets are demuxed once, *without decoding*, to collect every presentation timestamp.
   Variable-frame-rate video is therefore indexed by its real timestamps.
2. **Seek and decode forward.** For each wanted frame the reader seeks to the keyframe at or
   before it and decodes forward to the frame; when the next wanted frame needs no newer
   keyframe it keeps decoding instead of seeking again. A long video is never fully decoded.
   H.264 packets holding non-reference pictures (typically half of the B-frames) are not
   decoded at all unless they are wanted frames, since no other picture depends on them.
3. **Verification.** Each returned frame is the decoded frame whose timestamp is nearest to
   the wanted one, within half the distance to its neighbours. If the seek/decode path
   cannot find a frame (inaccurate index, unseekable stream) the reader falls back to a
   sequential decode from the start and picks frames by their ordinal; a frame that still
   cannot be decoded raises :class:`~affectgpt.media.CorruptMediaError`. There is no silent
   substitution.
4. **Orientation.** Frames are returned upright: the display matrix (rotation and mirroring
   written by phones, or the legacy ``rotate`` tag) is applied, as ffmpeg's ``autorotate`` does.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from av.video.reformatter import VideoReformatter

from ._container import (
    AV_ERRORS,
    check_not_truncated,
    declared_stream_duration,
    describe_error,
    discard_others,
    video_stream,
)
from ._orientation import display_matrix, display_orientation, legacy_rotate_tag, orient
from .errors import CorruptMediaError, EmptyMediaError
from .gate import DecodeBudget, MediaLimits, open_container, video_decode_error

__all__ = [
    "SampledFrames",
    "read_frames",
    "sample_frame_indices",
    "sample_frames",
]

#: Containers whose packets carry exact timestamps, so frames can be found by seeking and
#: matching timestamps. Elsewhere (MPEG-PS/TS, raw elementary streams, ...) timestamps after a
#: seek are interpolated by parsers and can be off by frames: those files are decoded from the
#: start and frames are picked by their ordinal, which is slower but exact.
SEEKABLE_FORMATS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "flv"})

#: How the decoder uses threads: ``"AUTO"`` (frame + slice threads), ``"SLICE"``, ``"FRAME"``
#: or ``"NONE"``. Change it for data-loader workers that already run one process per core.
DECODER_THREAD_TYPE = "AUTO"


def sample_frame_indices(num_frames: int, n: int = 8) -> list[int]:
    """Indices of ``n`` frames sampled uniformly from a video of ``num_frames`` frames.

    The rule of the reference code (Video-LLaMA ``load_video`` with ``sampling="uniform"``,
    MERTools ``load_video_from_npy``): with ``k = min(n, num_frames)`` the indices are
    ``floor(j * num_frames / k)`` for ``j = 0 .. k-1`` (the start of each of ``k`` equal
    segments), and when the video has fewer than ``n`` frames the list is padded by repeating
    the last index. Examples for ``n = 8``: 5 frames -> ``[0, 1, 2, 3, 4, 4, 4, 4]``;
    100 frames -> ``[0, 12, 25, 37, 50, 62, 75, 87]``.

    The reference computes ``np.arange(0, num_frames, num_frames / k).astype(int)``; for some
    ``n`` that are not powers of two (e.g. ``n=7``, 17 frames) floating-point rounding makes
    ``arange`` return ``k + 1`` values, the last equal to ``num_frames`` (out of range).
    MERTools truncates to ``n``; so does this function, so it always returns ``n`` valid
    indices. For ``n = 8`` it is identical to the reference for every length.

    Args:
        num_frames: number of frames in the video (``>= 1``).
        n: number of frames to sample (``>= 1``).

    Returns:
        ``n`` non-decreasing indices in ``[0, num_frames)``.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    k = min(n, num_frames)
    step = num_frames / k
    indices = [int(j * step) for j in range(k)]
    indices.extend(indices[-1:] * (n - k))
    return indices


@dataclass
class SampledFrames:
    """Frames read by :func:`sample_frames`.

    Attributes:
        frames: ``[n, H, W, 3]`` uint8 RGB frames in display orientation.
        indices: the frame index of each returned frame (presentation order).
        timestamps: presentation time of each returned frame in seconds, counted from the
            first frame of the stream.
        num_frames: number of frames in the video (the count the indices were sampled from).
        fps: average frame rate (``num_frames / duration`` where known), or ``None``.
        rotation: counter-clockwise rotation, in degrees, that was applied to the decoded
            pictures to display them upright (0, 90, 180 or 270).
        stats: how the frames were obtained, for diagnostics: ``table`` (``"index"``: frame
            times from the container header, ``"scan"``: from the packets), ``mode``
            (``"seek"`` or the ``"sequential"`` fallback), ``seeks``, ``frames_decoded`` and
            ``packets_skipped`` (non-reference pictures left undecoded).
    """

    frames: np.ndarray
    indices: list[int]
    timestamps: list[float]
    num_frames: int
    fps: float | None
    rotation: int
    stats: dict[str, int | str] = field(default_factory=dict)


def read_frames(
    path: str | os.PathLike[str], n: int = 8, *, limits: MediaLimits | None = None
) -> np.ndarray:
    """Decode ``n`` uniformly sampled frames of a video.

    Frames are chosen with :func:`sample_frame_indices` (the reference rule) and returned
    upright as ``[n, H, W, 3]`` uint8 RGB. See :func:`sample_frames` for the details and for
    reading explicit indices.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        NoVideoStreamError: the file has no video stream.
        EmptyMediaError: the file is empty or its video stream has no frames.
        CorruptMediaError: the container cannot be read or a needed frame cannot be decoded.
        MediaRefusedError: the media gate refused the file (format, protocol or a limit of
            ``limits``, default :func:`~affectgpt.media.default_limits`).
    """
    return sample_frames(path, n, limits=limits).frames


def sample_frames(
    path: str | os.PathLike[str],
    n: int = 8,
    *,
    indices: Sequence[int] | None = None,
    limits: MediaLimits | None = None,
) -> SampledFrames:
    """Decode uniformly sampled frames (or the frames at ``indices``) with their metadata.

    Args:
        path: a video file (anything FFmpeg reads: MP4, MKV, WebM, AVI, MOV, ...).
        n: number of frames to sample uniformly (ignored when ``indices`` is given).
        indices: explicit frame indices (presentation order, any order, repeats allowed);
            negative values count from the end as in Python.
        limits: the media gate's limits (default: :func:`~affectgpt.media.default_limits`);
            the video's span and the size of the returned frames are checked before decoding.

    Returns:
        A :class:`SampledFrames`. ``frames[j]`` is frame ``indices[j]``.

    Raises:
        FileNotFoundError, NoVideoStreamError, EmptyMediaError, CorruptMediaError (see
        :func:`read_frames`); ``IndexError`` for an explicit index out of range.
    """
    name, container = open_container(path, limits)
    budget = DecodeBudget(name, limits)
    try:
        stream = video_stream(container, name)
        check_not_truncated(container, name)
        table = _table_from_index(stream)
        if table is not None and stream.time_base:
            span = float((table.pts[-1] - table.pts[0]) * stream.time_base)
            budget.check_seconds(span, "the video stream")
        if table is None:
            discard_others(container, stream)
            table = _table_from_scan(container, stream, name, budget)
            container, stream = _reopen(container, name, limits)
        if indices is None:
            wanted = sample_frame_indices(table.num_frames, n)
        else:
            wanted = [_normalise_index(i, table.num_frames) for i in indices]
            if not wanted:
                raise ValueError("indices is empty")
        context = stream.codec_context
        if context is not None:  # the RGB frames this call returns
            budget.check_kept(len(wanted) * context.width * context.height * 3,
                              f"{len(wanted)} frames")
        _prepare_decoder(container, stream)
        stats: dict[str, int | str] = {}
        decoded = None
        if container.format.name in SEEKABLE_FORMATS:
            decoded = _decode_by_seeking(
                container, stream, name, table, sorted(set(wanted)), stats
            )
        if decoded is None:  # untrusted timestamps or an index that disagreed with the packets
            container, stream = _reopen(container, name, limits)
            _prepare_decoder(container, stream)
            decoded = _decode_sequentially(container, stream, table, set(wanted), name, stats)
        time_base = stream.time_base or Fraction(0)
    finally:
        container.close()

    images = _same_size([decoded[i].image for i in wanted])
    origin = table.pts[0]
    return SampledFrames(
        frames=np.stack(images),
        indices=list(wanted),
        timestamps=[float((decoded[i].pts - origin) * time_base) for i in wanted],
        num_frames=table.num_frames,
        fps=table.fps,
        rotation=decoded[wanted[0]].rotation,
        stats=stats,
    )


def _reopen(container, name: str, limits: MediaLimits | None):
    """Close ``container`` and open the file again, positioned at its start."""
    container.close()
    _, container = open_container(name, limits)
    return container, video_stream(container, name)


def _prepare_decoder(container, stream) -> None:
    discard_others(container, stream)
    stream.thread_type = DECODER_THREAD_TYPE


def _same_size(images: list[np.ndarray]) -> list[np.ndarray]:
    """Resize frames to the first frame's size (for streams that change resolution)."""
    height, width = images[0].shape[:2]
    if all(image.shape[:2] == (height, width) for image in images):
        return images
    from PIL import Image

    return [
        image if image.shape[:2] == (height, width)
        else np.asarray(Image.fromarray(image).resize((width, height), Image.BICUBIC))
        for image in images
    ]


def _normalise_index(index: int, num_frames: int) -> int:
    index = int(index)
    if index < 0:
        index += num_frames
    if not 0 <= index < num_frames:
        raise IndexError(f"frame index {index} out of range for {num_frames} frames")
    return index


# --------------------------------------------------------------------------- frame tables


@dataclass
class _FrameTable:
    """Presentation timestamps of all frames and where decoding can start."""

    pts: list[int]  # every frame's presentation timestamp, ascending (stream time base)
    key_pts: list[int]  # keyframes' presentation timestamps, ascending (seek targets)
    fps: float | None
    exact: bool  # True when read from the packets, False when computed from the header

    @property
    def num_frames(self) -> int:
        return len(self.pts)

    def shifted(self, delta: int) -> _FrameTable:
        return _FrameTable(
            [t + delta for t in self.pts], [t + delta for t in self.key_pts], self.fps,
            self.exact,
        )

    def window(self, i: int) -> tuple[int, float, float]:
        """Target timestamp of frame ``i`` and the half-open interval that identifies it."""
        t = self.pts[i]
        lo = (self.pts[i - 1] + t) / 2 if i > 0 else float("-inf")
        hi = (t + self.pts[i + 1]) / 2 if i + 1 < len(self.pts) else float("inf")
        return t, lo, hi


def _table_from_index(stream) -> _FrameTable | None:
    """Frame table from the container's sample index (no packet reads), if it is reliable.

    Reliable means: the header declares a frame count, the index holds exactly that many
    non-discarded entries, and their decode timestamps are evenly spaced (constant frame
    rate), so that frame ``i`` is presented at ``start + i * step``.
    """
    count = stream.frames
    if count <= 0:
        return None
    entries = stream.index_entries
    if len(entries) != count:
        return None
    stamps = []
    keys = []
    for entry in entries:
        if entry.is_discard:
            return None
        stamps.append(entry.timestamp)
        if entry.is_keyframe:
            keys.append(entry.timestamp)
    if not keys:
        return None
    if count > 1:
        step = stamps[1] - stamps[0]
        if step <= 0 or any(b - a != step for a, b in zip(stamps, stamps[1:])):
            return None  # variable frame rate: use the packets' own timestamps
    else:
        step = 1
    first = stream.start_time if stream.start_time is not None else stamps[0]
    delay = first - stamps[0]  # decode-to-presentation delay (B-frame reordering)
    pts = [first + i * step for i in range(count)]
    # FFmpeg seeks on presentation time, so keyframes are addressed by their pts.
    key_pts = [k + delay for k in keys]
    return _FrameTable(pts, key_pts, _fps(stream, count), exact=False)


def _table_from_scan(container, stream, name: str, budget: DecodeBudget) -> _FrameTable:
    """Frame table from one pass over the video packets (demuxing only, no decoding)."""
    records: list[tuple[int, bool]] = []
    duration = 0
    time_base = stream.time_base
    # The duration limit in stream ticks, so the per-packet check is an integer comparison.
    limit_ticks = budget.limits.max_duration / float(time_base) if time_base else None
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None:
                # No timestamps at all: number the packets in decode order (raw streams).
                ts = records[-1][0] + 1 if records else 0
            elif limit_ticks is not None and records and ts - records[0][0] > limit_ticks:
                budget.check_seconds(float((ts - records[0][0]) * time_base), "the video stream")
            records.append((ts, packet.is_keyframe))
            duration = packet.duration or duration
    except AV_ERRORS as exc:
        raise CorruptMediaError(name, f"cannot read video packets ({describe_error(exc)})") from exc
    if not records:
        raise EmptyMediaError(name, "video stream has no frames")
    pts = sorted(r[0] for r in records)
    keys = sorted(r[0] for r in records if r[1])
    if not keys or keys[0] > pts[0]:
        keys.insert(0, pts[0])  # decoding from the very start always works
    declared = declared_stream_duration(stream)
    if declared and stream.time_base:
        present = float((pts[-1] - pts[0] + duration) * stream.time_base)
        if present < declared - max(1.0, 0.1 * declared):
            raise CorruptMediaError(
                name,
                f"file is truncated: video stream declares {declared:.2f} s, "
                f"only {present:.2f} s present",
            )
    return _FrameTable(pts, keys, _fps(stream, len(pts), pts), exact=True)


def _fps(stream, count: int, pts: list[int] | None = None) -> float | None:
    if pts and count > 1 and stream.time_base:
        span = (pts[-1] - pts[0]) * stream.time_base
        if span > 0:
            return float((count - 1) / span)
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else None


# --------------------------------------------------------------------------- decoding


@dataclass
class _Picked:
    image: np.ndarray
    pts: int
    rotation: int


class _Cursor:
    """Decoded frames of one stream in presentation order, with one frame of look-ahead."""

    def __init__(self, container, stream, name: str, skip=None) -> None:
        self.container = container
        self.stream = stream
        self.name = name
        self.skip = skip  # packet -> True to leave it undecoded
        self.packets_skipped = 0
        self.anchor: int | None = None  # keyframe pts where decoding (re)started
        self.position: int | None = None  # pts of the last frame taken from the decoder
        self.frames_decoded = 0
        self._pending = None
        self._iter: Iterator | None = None

    def start(self, key_pts: int, seek: bool) -> None:
        """Position the decoder at a keyframe (``seek=False``: the stream is at its start)."""
        if seek:
            try:
                self.container.seek(key_pts, stream=self.stream, backward=True, any_frame=False)
            except AV_ERRORS as exc:
                raise _SeekFailed from exc
        self._iter = self._frames()
        self._pending = None
        self.anchor = key_pts
        self.position = None

    def _frames(self) -> Iterator:
        try:
            for packet in self.container.demux(self.stream):
                if self.skip is not None and packet.size and self.skip(packet):
                    self.packets_skipped += 1
                    continue
                yield from packet.decode()
        except AV_ERRORS as exc:
            raise video_decode_error(self.name, exc, self.stream) from exc

    def peek(self):
        if self._pending is None and self._iter is not None:
            frame = next(self._iter, None)
            if frame is None:
                self._iter = None
                return None
            if frame.pts is None:
                frame.pts = frame.dts
            if frame.pts is None or (self.position is not None and frame.pts <= self.position):
                # Missing, or not increasing in presentation order (e.g. H.264 in AVI, whose
                # packets carry decode-order stamps): timestamps cannot identify frames.
                raise _UnreliableTimestamps
            self.frames_decoded += 1
            self.position = frame.pts
            self._pending = frame
        return self._pending

    def pop(self) -> None:
        self._pending = None

    def close(self) -> None:
        """Drop the frame generator now. It refers to this cursor, so without this the pair
        (and the decoder, with its threads) would wait for the garbage collector -- which may
        then run in a forked child (a DataLoader worker), where freeing a frame-threaded
        decoder deadlocks."""
        if self._iter is not None:
            self._iter.close()
            self._iter = None
        self._pending = None


class _SeekFailed(Exception):
    pass


class _UnreliableTimestamps(Exception):
    pass


_LATE = object()  # sentinel: decoding (re)started after the wanted frame


def _decode_by_seeking(
    container, stream, name: str, table: _FrameTable, wanted: list[int], stats: dict
):
    """Decode the frames ``wanted`` (sorted, unique) by seeking; ``None`` if that fails."""
    cursor = _Cursor(container, stream, name)
    cursor.start(table.key_pts[0], seek=False)  # a freshly opened container is at its start
    rotate_tag = legacy_rotate_tag(stream)
    reformatter = VideoReformatter()  # reuses one swscale context for all frames
    out: dict[int, _Picked] = {}
    seeks = 0
    try:
        first = cursor.peek()
        if first is None:
            return None
        if first.pts != table.pts[0]:
            if table.exact:
                return None  # the decoder does not start where the packets say
            # Header-derived times can be off by a constant (AVI numbers packets from 0 while
            # its frames are stamped from 1; edit lists): align them on the first frame.
            table = table.shifted(first.pts - table.pts[0])
            cursor.anchor = table.key_pts[0]
        cursor.skip = _skip_predicate(stream, table, wanted)
        for i in wanted:
            target, lo, hi = table.window(i)
            k = max(bisect.bisect_right(table.key_pts, target) - 1, 0)
            if cursor.position is None:
                restarted = True
                if cursor.anchor != table.key_pts[k]:
                    cursor.start(table.key_pts[k], seek=True)
                    seeks += 1
            elif table.key_pts[k] > cursor.position:
                # A keyframe lies between the decoder and the target: jump to it.
                cursor.start(table.key_pts[k], seek=True)
                seeks += 1
                restarted = True
            else:
                restarted = False  # same group of pictures: keep decoding forward
            # After a (re)start the first decoded frame must not lie past the target: with
            # packet timestamps it must not exceed it, with header-derived ones (which may be
            # off by a little) it must stay inside the target's interval.
            late = (target + 0.5 if table.exact else hi) if restarted else None
            frame = _find(cursor, target, lo, hi, late)
            while frame is _LATE:
                # The seek landed after the target (an index that disagrees with the packets):
                # start one keyframe earlier, or give up and decode sequentially.
                if k == 0:
                    return None
                k -= 1
                cursor.start(table.key_pts[k], seek=True)
                seeks += 1
                frame = _find(cursor, target, lo, hi, target + 0.5 if table.exact else hi)
            if frame is None:
                return None
            out[i] = _to_picked(frame, rotate_tag, reformatter)
    except (_SeekFailed, _UnreliableTimestamps):
        return None
    finally:
        cursor.close()
        stats.update(
            mode="seek", frames_decoded=cursor.frames_decoded, seeks=seeks,
            packets_skipped=cursor.packets_skipped, table="scan" if table.exact else "index",
        )
    return out


def _skip_predicate(stream, table: _FrameTable, wanted: list[int]):
    """A test for packets that need not be decoded, or ``None``.

    Non-reference pictures (H.264 ``nal_ref_idc == 0``, typically half the B-frames) are never
    used to decode other pictures, so a packet holding one can be dropped unless it is a
    wanted frame itself -- what ``skip_frame=nonref`` does inside the decoder, but decided per
    packet so the wanted frames are always decoded. Roughly halves the decoding work between
    wanted frames.
    """
    nal_length = _avcc_nal_length_size(stream)
    if nal_length is None:
        return None
    lows, highs = [], []
    for i in wanted:
        _, lo, hi = table.window(i)
        lows.append(lo)
        highs.append(hi)

    def skip(packet) -> bool:
        pts = packet.pts
        if pts is None or packet.is_keyframe:
            return False
        j = bisect.bisect_right(lows, pts) - 1
        if j >= 0 and pts < highs[j]:
            return False  # a wanted frame
        return _h264_non_reference(memoryview(packet), nal_length)

    return skip


def _avcc_nal_length_size(stream) -> int | None:
    """NAL length-prefix size of an H.264 stream stored as AVCC (MP4/MKV), else ``None``."""
    if stream.codec_context.name != "h264":
        return None
    extradata = stream.codec_context.extradata
    if not extradata or len(extradata) < 7 or extradata[0] != 1:
        return None  # Annex B (start codes) or unknown: do not skip anything
    return (extradata[4] & 3) + 1


def _h264_non_reference(data: memoryview, nal_length: int) -> bool:
    """True when every slice in an AVCC H.264 access unit has ``nal_ref_idc == 0``."""
    pos, end, slices = 0, len(data), 0
    while pos + nal_length < end:
        size = int.from_bytes(data[pos : pos + nal_length], "big")
        if size <= 0 or pos + nal_length + size > end:
            return False  # malformed: decode it
        header = data[pos + nal_length]
        nal_type = header & 0x1F
        if nal_type == 5:
            return False  # IDR slice
        if nal_type in (1, 2, 3, 4):  # coded slice (or data partition)
            if header & 0x60:
                return False  # nal_ref_idc != 0
            slices += 1
        pos += nal_length + size
    return slices > 0


def _find(cursor: _Cursor, target: int, lo: float, hi: float, late: float | None = None):
    """Advance to the decoded frame nearest ``target`` inside ``[lo, hi)``.

    Returns the frame, ``None`` when the stream holds no such frame, or ``_LATE`` when the
    first decoded frame's timestamp is ``>= late`` (decoding started after the target).
    """
    best = None
    while True:
        frame = cursor.peek()
        if frame is None:
            return best
        pts = frame.pts
        if late is not None:
            if pts >= late:
                return _LATE
            late = None
        if pts < lo:
            cursor.pop()
            continue
        if pts < target:
            best = frame
            cursor.pop()
            continue
        if pts < hi and (best is None or pts - target <= target - best.pts):
            best = frame
            cursor.pop()
        return best


def _decode_sequentially(
    container, stream, table: _FrameTable, wanted: set[int], name: str, stats: dict
):
    """Decode from the start and pick frames by their ordinal in presentation order."""
    out: dict[int, _Picked] = {}
    rotate_tag = legacy_rotate_tag(stream)
    reformatter = VideoReformatter()
    last = max(wanted)
    ordinal = 0
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                if ordinal in wanted:
                    if frame.pts is None:
                        frame.pts = frame.dts if frame.dts is not None else ordinal
                    out[ordinal] = _to_picked(frame, rotate_tag, reformatter)
                ordinal += 1
            if ordinal > last:
                break
    except AV_ERRORS as exc:
        raise video_decode_error(name, exc, stream) from exc
    finally:
        stats.update(
            mode="sequential", frames_decoded=ordinal, packets_skipped=0,
            seeks=stats.get("seeks", 0), table="scan" if table.exact else "index",
        )
    missing = sorted(wanted - out.keys())
    if missing:
        raise CorruptMediaError(
            name,
            f"frame {missing[0]} of {table.num_frames} could not be decoded "
            f"(only {ordinal} frames decodable)",
        )
    return out


# --------------------------------------------------------------------------- conversion


def _to_picked(frame, rotate_tag: int = 0, reformatter=None) -> _Picked:
    """Convert a decoded frame to an upright RGB array (honouring its colour range)."""
    reformatter = reformatter or VideoReformatter()
    rgb = reformatter.reformat(
        frame, format="rgb24", src_color_range=frame.color_range or None,
        interpolation="BICUBIC",
    )
    image = rgb.to_ndarray()
    matrix = display_matrix(frame)
    if matrix is not None:
        rotation, mirrored = display_orientation(matrix)
    else:
        rotation, mirrored = (-rotate_tag) % 360 // 90 * 90, False  # the tag is clockwise
    image = orient(image, rotation, mirrored)
    return _Picked(np.ascontiguousarray(image), frame.pts, rotation)
