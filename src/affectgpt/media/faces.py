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
* :func:`crop_faces` -- square crops around the largest face of every frame, with one
  (median) box for the whole clip or one box per frame. A clip in which no frame shows a face
  gives the centre squares of its own frames with ``found`` all ``False``; nothing is carried
  over between calls.

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
    "FaceCrops",
    "crop_faces",
    "detect_faces",
]

#: File name of the cascade used by :func:`detect_faces`, in ``cv2.data.haarcascades``.
FACE_CASCADE = "haarcascade_frontalface_default.xml"

_TRACKS = ("median", "per-frame")
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


@dataclass
class FaceCrops:
    """Face crops made by :func:`crop_faces`.

    Attributes:
        frames: ``[n, S, S, 3]`` uint8 RGB crops.
        boxes: per frame, the largest detected face ``(x, y, w, h)`` in that frame's
            coordinates, or ``None`` where no face was found.
        found: per frame, whether a face was detected in it (``boxes[i] is not None``). All
            ``False`` means the crops are the centre squares of the full frames.
        regions: per frame, the square ``(x, y, side, side)`` of the input frame that was
            cropped (then resized to ``S`` where ``side != S``).
    """

    frames: np.ndarray
    boxes: list[Box | None]
    found: list[bool]
    regions: list[Box] = field(default_factory=list)

    @property
    def any_found(self) -> bool:
        """Whether a face was found in at least one frame."""
        return any(self.found)


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
    **detect: Any,
) -> FaceCrops:
    """Square crops around the largest face of a clip's frames.

    Every frame goes through :func:`detect_faces`; its largest face is kept. The cropped
    square is centred on a face box, its side is ``max(w, h) * (1 + 2 * margin)`` (``margin``
    of the box side added on each side), capped at the frame's shorter side, and shifted to lie
    inside the frame (clamped to the image, never padded).

    Args:
        frames: ``[n, H, W, 3]`` uint8 RGB frames of one clip (e.g. from
            :func:`~affectgpt.media.read_frames`).
        margin: context around the face, as a fraction of the face box side per side.
        size: side ``S`` of the output crops (Pillow bicubic, antialiased). ``None``: the side
            of the crop around the median face box (or the frame's shorter side when there is
            no face), so ``track="median"`` crops are not resampled at all.
        track: ``"median"`` crops every frame at one box, the element-wise median (centre and
            size) of the boxes detected in the clip -- temporally stable, for mostly static
            talking-head clips. ``"per-frame"`` crops each frame at its own face; a frame
            without a detection uses the box of the nearest frame with one (the earlier on a
            tie).
        **detect: keyword arguments for :func:`detect_faces` (``min_neighbors``, ``max_side``,
            ...).

    Returns:
        A :class:`FaceCrops`. When no frame shows a face, ``frames`` are the centre squares
        of the input frames (resized to ``size``) and ``found`` is all ``False`` -- check
        :attr:`FaceCrops.any_found` to record such clips.

    Raises:
        ImportError: OpenCV is not installed (``pip install 'affectgpt[faces]'``).
    """
    if track not in _TRACKS:
        raise ValueError(f"track must be one of {_TRACKS}, got {track!r}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if size is not None and size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames [n, H, W, 3], got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames, got {frames.dtype}")
    n, height, width = frames.shape[:3]
    if n == 0 or height == 0 or width == 0:
        raise ValueError(f"expected non-empty frames, got shape {frames.shape}")

    boxes: list[Box | None] = []
    for frame in frames:
        faces = detect_faces(frame, **detect)
        boxes.append(faces[0] if faces else None)
    found = [box is not None for box in boxes]
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
    return FaceCrops(frames=out, boxes=boxes, found=found, regions=list(regions))
