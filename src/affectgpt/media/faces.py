"""Face detection and face crops of sampled frames (OpenCV Haar cascade).

Emotion-recognition pipelines (MER, AffectGPT's preprocessing) often crop the speaker's face
before the visual encoder. This module does it with the frontal-face Haar cascade that ships
with OpenCV (``cv2.data.haarcascades``), so it needs no model download::

    from affectgpt.media import crop_faces, read_frames

    frames = read_frames("clip.mp4", n=8)         # [8, H, W, 3] uint8 RGB
    crops = crop_faces(frames, size=224)          # FaceCrops
    crops.frames                                  # [8, 224, 224, 3] uint8
    if not any(crops.found):
        ...                                       # no face: full frames (centre square)

* :func:`detect_faces` -- face boxes ``(x, y, w, h)`` of one RGB frame, largest first.
* :func:`track_faces` -- links the faces detected in successive frames into tracks (box
  overlap and centre distance), so one person is followed across the clip.
* :func:`find_main_face` -- the main speaker's face: the track with the best size x
  stability (share of frames it is seen in) x centrality, its box in every frame
  (interpolated where the detector missed it), or ``has_face=False`` when no frame shows a
  face, so a caller can say so instead of guessing.
* :func:`crop_faces` -- square crops around the main face of a clip, with one (median) box
  for the whole clip or one box per frame. A clip in which no frame shows a face gives the
  centre squares of its own frames with ``found`` all ``False``; nothing is carried over
  between calls.

OpenCV is an optional dependency (``pip install 'affectgpt[faces]'``) imported on first use;
``import affectgpt.media`` does not import it. The Haar cascade finds upright, roughly
frontal faces; profiles, strong rotations and very small faces are missed (those frames then
take the box of the nearest frame with a face, or of the median box).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "FACE_CASCADE",
    "MIN_COVERAGE",
    "NO_FACE",
    "FaceCrops",
    "FaceTrack",
    "MainFace",
    "crop_faces",
    "detect_faces",
    "find_main_face",
    "track_faces",
]

#: File name of the cascade used by :func:`detect_faces`, in ``cv2.data.haarcascades``.
FACE_CASCADE = "haarcascade_frontalface_default.xml"

_TRACKS = ("median", "per-frame", "interpolated")
#: ``MainFace.reason`` of a clip in which no face was found
NO_FACE = "no face found"
#: a face track must be seen in at least this share of the frames to count (the Haar
#: cascade's false detections on textures come and go; a visible speaker stays)
MIN_COVERAGE = 0.35
_INSTALL_HINT = "pip install 'affectgpt[faces]'"

Box = tuple[int, int, int, int]


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise ImportError(
            f"face detection needs OpenCV, which is not installed: {_INSTALL_HINT} "
            "(or pip install opencv-python-headless)"
        ) from exc
    return cv2


# OpenCV's CascadeClassifier is not documented as thread-safe: one instance per thread.
_local = threading.local()


def _cascade() -> Any:
    classifier = getattr(_local, "classifier", None)
    if classifier is None:
        cv2 = _cv2()
        path = cv2.data.haarcascades + FACE_CASCADE
        classifier = cv2.CascadeClassifier(path)
        if classifier.empty():
            raise RuntimeError(f"cannot load OpenCV's face cascade from {path}")
        _local.classifier = classifier
    return classifier


def detect_faces(
    frame: np.ndarray,
    *,
    scale_factor: float = 1.1,
    min_neighbors: int = 5,
    min_size: int = 24,
    max_side: int | None = 640,
) -> list[Box]:
    """Faces in one frame, as boxes ``(x, y, w, h)`` in pixels, largest (by area) first.

    Runs OpenCV's frontal-face Haar cascade (:data:`FACE_CASCADE`) on the histogram-equalised
    grey image, as OpenCV's own face-detection sample does.

    Args:
        frame: ``[H, W, 3]`` uint8 RGB (or ``[H, W]`` uint8 grey).
        scale_factor, min_neighbors: ``detectMultiScale`` parameters (image-pyramid step and
            how many overlapping detections a face needs; higher means fewer false positives).
        min_size: smallest face side searched for, in pixels of the (downscaled) detection
            image.
        max_side: frames whose longer side exceeds this are downscaled for detection (the
            cascade's cost grows with the pixel count); boxes are returned in the
            coordinates of ``frame``. ``None`` detects at full resolution.

    Returns:
        A list of ``(x, y, w, h)`` tuples of Python ints inside the frame (empty when no face).

    Raises:
        ImportError: OpenCV is not installed (``pip install 'affectgpt[faces]'``).
    """
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f"expected a uint8 frame, got {frame.dtype}")
    if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[-1] == 3)):
        raise ValueError(f"expected a frame [H, W, 3] (or [H, W]), got shape {frame.shape}")
    height, width = frame.shape[:2]
    if height == 0 or width == 0:
        return []
    cv2 = _cv2()
    grey = (
        frame if frame.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    )
    scale = 1.0
    if max_side is not None and max(height, width) > max_side:
        scale = max_side / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    grey = cv2.equalizeHist(np.ascontiguousarray(grey))
    found = _cascade().detectMultiScale(
        grey,
        scaleFactor=scale_factor,
        minNeighbors=min_neighbors,
        minSize=(min_size, min_size),
    )
    boxes = []
    for x, y, w, h in np.asarray(found, dtype=np.float64).reshape(-1, 4):
        x0 = min(max(int(round(x / scale)), 0), width - 1)
        y0 = min(max(int(round(y / scale)), 0), height - 1)
        x1 = min(max(int(round((x + w) / scale)), x0 + 1), width)
        y1 = min(max(int(round((y + h) / scale)), y0 + 1), height)
        boxes.append((x0, y0, x1 - x0, y1 - y0))
    boxes.sort(key=lambda b: (-b[2] * b[3], b[1], b[0]))
    return boxes


# --------------------------------------------------------------------------- tracking


def _centre(box) -> tuple[float, float]:
    return (box[0] + box[2] / 2.0, box[1] + box[3] / 2.0)


def _iou(a, b) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class FaceTrack:
    """One face followed across the frames of a clip (made by :func:`track_faces`).

    Attributes:
        detections: frame index -> the box ``(x, y, w, h)`` detected for this face there.
        size: square root of the median box area over the frame's shorter side squared
            (0.25: a face a quarter as high as the frame).
        coverage: share of the clip's frames in which the face was detected.
        centrality: 1 at the frame centre, 0 in a corner (from the median box centre).
        score: ``size * coverage * (0.5 + 0.5 * centrality)``, how likely this face is
            the main speaker's: big, steadily visible and central.
    """

    detections: dict[int, Box] = field(default_factory=dict)
    size: float = 0.0
    coverage: float = 0.0
    centrality: float = 0.0
    score: float = 0.0

    @property
    def frames(self) -> list[int]:
        """The indices of the frames the face was detected in, in order."""
        return sorted(self.detections)

    def box_at(self, index: int) -> Box:
        """The face box in frame ``index``: detected, or linearly interpolated between the
        nearest detections before and after it (the nearest one outside that range)."""
        if index in self.detections:
            return self.detections[index]
        frames = self.frames
        before = [f for f in frames if f < index]
        after = [f for f in frames if f > index]
        if not before or not after:
            return self.detections[before[-1] if before else after[0]]
        lo, hi = before[-1], after[0]
        t = (index - lo) / (hi - lo)
        a, b = self.detections[lo], self.detections[hi]
        return tuple(int(round(u + (v - u) * t)) for u, v in zip(a, b))  # type: ignore[return-value]

    def boxes(self, n: int) -> list[Box]:
        """:meth:`box_at` for frames ``0 .. n - 1``."""
        return [self.box_at(i) for i in range(n)]


def _link_cost(track_box: Box, box: Box, max_shift: float) -> float | None:
    """How far ``box`` is from the last box of a track (lower is closer), or ``None``
    when it cannot be the same face (size changed more than 2x, or moved more than
    ``max_shift`` face sides without overlapping)."""
    side_a, side_b = max(track_box[2], track_box[3]), max(box[2], box[3])
    if not 0.5 <= side_b / max(side_a, 1) <= 2.0:
        return None
    (ax, ay), (bx, by) = _centre(track_box), _centre(box)
    shift = float(np.hypot(ax - bx, ay - by)) / ((side_a + side_b) / 2.0)
    overlap = _iou(track_box, box)
    if overlap <= 0.0 and shift > max_shift:
        return None
    return shift - overlap


def track_faces(
    detections: list[list[Box]],
    frame_size: tuple[int, int],
    *,
    max_shift: float = 2.0,
) -> list[FaceTrack]:
    """Link per-frame face boxes into tracks, best main-speaker candidate first.

    Frames are visited in order; each detection joins the track whose latest box is
    closest (centre distance in face sides, minus the overlap), provided the size changed
    less than 2x and the box overlaps that latest box or moved at most ``max_shift`` face
    sides; the closest pairs are linked first, every track takes at most one box per frame,
    and a detection that joins no track starts a new one. A track may skip frames (a missed
    detection does not split a face into two tracks).

    Args:
        detections: per frame, the boxes ``(x, y, w, h)`` found in it (e.g. from
            :func:`detect_faces`).
        frame_size: ``(height, width)`` of the frames, for the size and centrality scores.
        max_shift: the largest jump between two detections of one face, in face sides
            (frames sampled far apart move more).

    Returns:
        The tracks, sorted by :attr:`FaceTrack.score` (highest first; ties: more frames,
        then the earlier start).
    """
    height, width = frame_size
    n = len(detections)
    tracks: list[FaceTrack] = []
    last: list[Box] = []
    for index, boxes in enumerate(detections):
        pairs = []
        for t, track_box in enumerate(last):
            for b, box in enumerate(boxes):
                cost = _link_cost(track_box, tuple(box), max_shift)
                if cost is not None:
                    pairs.append((cost, t, b))
        used_tracks: set[int] = set()
        used_boxes: set[int] = set()
        for _, t, b in sorted(pairs):
            if t in used_tracks or b in used_boxes:
                continue
            used_tracks.add(t)
            used_boxes.add(b)
            tracks[t].detections[index] = tuple(boxes[b])
            last[t] = tuple(boxes[b])
        for b, box in enumerate(boxes):
            if b not in used_boxes:
                tracks.append(FaceTrack(detections={index: tuple(box)}))
                last.append(tuple(box))
    short = max(min(height, width), 1)
    half_diagonal = max(float(np.hypot(width, height)) / 2.0, 1.0)
    for track in tracks:
        array = np.asarray(list(track.detections.values()), dtype=np.float64)
        track.size = float(np.sqrt(np.median(array[:, 2] * array[:, 3]))) / short
        track.coverage = len(track.detections) / max(n, 1)
        cx = float(np.median(array[:, 0] + array[:, 2] / 2.0))
        cy = float(np.median(array[:, 1] + array[:, 3] / 2.0))
        off = float(np.hypot(cx - width / 2.0, cy - height / 2.0)) / half_diagonal
        track.centrality = max(0.0, 1.0 - off)
        track.score = track.size * track.coverage * (0.5 + 0.5 * track.centrality)
    tracks.sort(key=lambda tr: (-tr.score, -len(tr.detections), tr.frames[0]))
    return tracks


@dataclass
class MainFace:
    """The main speaker's face in a clip (made by :func:`find_main_face`).

    Attributes:
        boxes: per frame, the main face's box: detected there, or interpolated between the
            nearest frames where it was (held before the first and after the last); all
            ``None`` when there is no face.
        detected: per frame, whether the main face was detected in that frame.
        track: the main :class:`FaceTrack`, or ``None``.
        tracks: every face track found (the main one first), e.g. to count the people.
        reason: :data:`NO_FACE` when there is no face, else ``""``.
    """

    boxes: list[Box | None]
    detected: list[bool]
    track: FaceTrack | None = None
    tracks: list[FaceTrack] = field(default_factory=list)
    reason: str = ""

    @property
    def has_face(self) -> bool:
        """Whether a face was found (say so in a description when not)."""
        return self.track is not None


def _main_face(detections: list[list[Box]], frame_size: tuple[int, int],
               min_coverage: float, max_shift: float) -> MainFace:
    n = len(detections)
    tracks = track_faces(detections, frame_size, max_shift=max_shift)
    candidates = [t for t in tracks if t.coverage >= min_coverage]
    if not candidates:
        return MainFace(boxes=[None] * n, detected=[False] * n, tracks=tracks, reason=NO_FACE)
    main = candidates[0]
    return MainFace(boxes=list(main.boxes(n)), detected=[i in main.detections for i in range(n)],
                    track=main, tracks=tracks)


def find_main_face(
    frames: np.ndarray,
    *,
    min_coverage: float = MIN_COVERAGE,
    max_shift: float = 2.0,
    **detect: Any,
) -> MainFace:
    """Find the main speaker's face across a clip's frames.

    Faces are detected in every frame (:func:`detect_faces`), linked into tracks
    (:func:`track_faces`), and the track with the highest score (size x share of frames x
    centrality) is the main face: a passer-by seen in a few frames, a small face in the
    background or a one-frame false detection loses against the steadily visible speaker
    even in frames where it is the largest face.

    Args:
        frames: ``[n, H, W, 3]`` uint8 RGB frames of one clip.
        min_coverage: tracks seen in fewer than this share of the frames are not taken as
            the main face (:data:`MIN_COVERAGE`: 3 of 8 frames, 1 of 1 or 2; the cascade's
            false detections on textures rarely last that long). 0 accepts any detection.
        max_shift: see :func:`track_faces`.
        **detect: keyword arguments for :func:`detect_faces`.

    Returns:
        A :class:`MainFace`; ``has_face`` is ``False`` (and ``reason`` :data:`NO_FACE`)
        when no face is seen in enough frames.

    Raises:
        ImportError: OpenCV is not installed (``pip install 'affectgpt[faces]'``).
    """
    frames = _check_frames(frames)
    detections = [detect_faces(frame, **detect) for frame in frames]
    return _main_face(detections, frames.shape[1:3], min_coverage, max_shift)


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames [n, H, W, 3], got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames, got {frames.dtype}")
    n, height, width = frames.shape[:3]
    if n == 0 or height == 0 or width == 0:
        raise ValueError(f"expected non-empty frames, got shape {frames.shape}")
    return frames


@dataclass
class FaceCrops:
    """Face crops made by :func:`crop_faces`.

    Attributes:
        frames: ``[n, S, S, 3]`` uint8 RGB crops.
        boxes: per frame, the main face's box ``(x, y, w, h)`` as detected in that frame
            (see :func:`find_main_face`), or ``None`` where it was not detected.
        found: per frame, whether the main face was detected in it (``boxes[i] is not
            None``). All ``False`` means no face: the crops are the centre squares of the
            full frames.
        regions: per frame, the square ``(x, y, side, side)`` of the input frame that was
            cropped (then resized to ``S`` where ``side != S``).
        main: the :class:`MainFace` the crops follow (``None`` only when built by hand).
    """

    frames: np.ndarray
    boxes: list[Box | None]
    found: list[bool]
    regions: list[Box] = field(default_factory=list)
    main: MainFace | None = None

    @property
    def any_found(self) -> bool:
        """Whether a face was found in at least one frame."""
        return any(self.found)

    @property
    def has_face(self) -> bool:
        """Whether the clip shows a face (same as :attr:`any_found`)."""
        return self.any_found


def _square(box: tuple[float, float, float, float], margin: float, width: int, height: int) -> Box:
    """Square around ``box`` enlarged by ``margin`` on every side, shifted into the image."""
    x, y, w, h = box
    side = round(max(w, h) * (1.0 + 2.0 * margin))
    side = int(min(max(side, 1), width, height))
    cx, cy = x + w / 2.0, y + h / 2.0
    left = int(min(max(round(cx - side / 2.0), 0), width - side))
    top = int(min(max(round(cy - side / 2.0), 0), height - side))
    return (left, top, side, side)


def _median_box(boxes: list[Box]) -> tuple[float, float, float, float]:
    """Element-wise median of the boxes' centres and sizes, as ``(x, y, w, h)``."""
    array = np.asarray(boxes, dtype=np.float64)
    cx = np.median(array[:, 0] + array[:, 2] / 2.0)
    cy = np.median(array[:, 1] + array[:, 3] / 2.0)
    w = np.median(array[:, 2])
    h = np.median(array[:, 3])
    return (float(cx - w / 2.0), float(cy - h / 2.0), float(w), float(h))


def crop_faces(
    frames: np.ndarray,
    *,
    margin: float = 0.25,
    size: int | None = None,
    track: str = "median",
    min_coverage: float = MIN_COVERAGE,
    **detect: Any,
) -> FaceCrops:
    """Square crops around the main face of a clip's frames.

    The main face is found with :func:`find_main_face`: faces are detected in every frame,
    linked across frames, and the biggest, most steadily visible and most central track
    wins, so a passer-by or a background face is not cropped in the frames where it
    happens to be the largest. The cropped square is centred on a box of that face, its
    side is ``max(w, h) * (1 + 2 * margin)`` (``margin`` of the box side added on each
    side), capped at the frame's shorter side, and shifted to lie inside the frame (clamped
    to the image, never padded).

    Args:
        frames: ``[n, H, W, 3]`` uint8 RGB frames of one clip (e.g. from
            :func:`~affectgpt.media.read_frames`).
        margin: context around the face, as a fraction of the face box side per side.
        size: side ``S`` of the output crops (Pillow bicubic, antialiased). ``None``: the side
            of the crop around the median face box (or the frame's shorter side when there is
            no face), so ``track="median"`` crops are not resampled at all.
        track: ``"median"`` crops every frame at one box, the element-wise median (centre and
            size) of the main face's detected boxes -- temporally stable, for mostly static
            talking-head clips. ``"per-frame"`` crops each frame at the main face's own box;
            a frame where it was not detected uses the box of the nearest frame where it was
            (the earlier on a tie). ``"interpolated"`` is ``"per-frame"`` with the missed
            frames' boxes interpolated between the detections before and after them.
        min_coverage: see :func:`find_main_face`.
        **detect: keyword arguments for :func:`detect_faces` (``min_neighbors``, ``max_side``,
            ...).

    Returns:
        A :class:`FaceCrops`. When no frame shows a face, ``frames`` are the centre squares
        of the input frames (resized to ``size``) and ``found`` is all ``False`` -- check
        :attr:`FaceCrops.has_face` to record such clips.

    Raises:
        ImportError: OpenCV is not installed (``pip install 'affectgpt[faces]'``).
    """
    if track not in _TRACKS:
        raise ValueError(f"track must be one of {_TRACKS}, got {track!r}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if size is not None and size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    frames = _check_frames(frames)
    n, height, width = frames.shape[:3]

    main = find_main_face(frames, min_coverage=min_coverage, **detect)
    boxes: list[Box | None] = [
        main.boxes[i] if main.detected[i] else None for i in range(n)
    ]
    found = list(main.detected)
    detected = [i for i, box in enumerate(boxes) if box is not None]

    if not detected:
        side = min(height, width)
        centre = ((width - side) // 2, (height - side) // 2, side, side)
        regions = [centre] * n
        out_side = side
    else:
        median = _square(_median_box([boxes[i] for i in detected]), margin, width, height)
        out_side = median[2]
        if track == "median":
            regions = [median] * n
        elif track == "interpolated":
            regions = [_square(box, margin, width, height) for box in main.boxes]
        else:
            regions = []
            for i in range(n):
                nearest = min(detected, key=lambda j, i=i: (abs(j - i), j))
                regions.append(_square(boxes[nearest], margin, width, height))
    if size is not None:
        out_side = size

    out = np.empty((n, out_side, out_side, 3), np.uint8)
    for i, (frame, (x, y, side, _)) in enumerate(zip(frames, regions)):
        crop = frame[y : y + side, x : x + side]
        if side != out_side:
            from PIL import Image

            crop = np.asarray(
                Image.fromarray(np.ascontiguousarray(crop)).resize(
                    (out_side, out_side), Image.BICUBIC
                )
            )
        out[i] = crop
    return FaceCrops(frames=out, boxes=boxes, found=found, regions=list(regions), main=main)
