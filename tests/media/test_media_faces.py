"""Face detection and face crops on real photographs (no mocks).

The face is the astronaut photo shipped with scikit-image (``skimage.data.astronaut()``,
Eileen Collins, 512x512). Its face region was measured once with OpenCV's frontal-face
cascade and checked by eye: ``FACE`` below, in the photo's pixel coordinates. Test clips
paste a 200x200 head patch of the photo at known positions over a smooth background, so the
true face position in every frame is known; detections must agree within ``TOL`` pixels.
Frames without a face are uniform noise and a crop of ``skimage.data.rocket()``.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("cv2", reason="needs the faces extra (opencv-python-headless)")
skdata = pytest.importorskip("skimage.data", reason="needs scikit-image (dev extra)")

from affectgpt.media import FaceCrops, crop_faces, detect_faces  # noqa: E402

#: The astronaut's face in ``skimage.data.astronaut()`` as (x, y, w, h).
FACE = (177, 66, 95, 95)
#: Allowed deviation of a detected box's edges from the known face region, in pixels.
TOL = 12
#: Head patch of the photo pasted into the test frames: rows 20..220, columns 125..325.
PATCH_X, PATCH_Y, PATCH = 125, 20, 200
#: The face inside the patch.
FACE_IN_PATCH = (FACE[0] - PATCH_X, FACE[1] - PATCH_Y, FACE[2], FACE[3])
H, W = 288, 512


def iou(a, b) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    ix = max(0, min(ax1, bx1) - max(a[0], b[0]))
    iy = max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def assert_is_face(box, face, tol: int = TOL) -> None:
    """``box`` lies within ``face`` grown by ``tol`` and overlaps it substantially."""
    x, y, w, h = box
    fx, fy, fw, fh = face
    assert fx - tol <= x and x + w <= fx + fw + tol, (box, face)
    assert fy - tol <= y and y + h <= fy + fh + tol, (box, face)
    assert iou(box, face) > 0.6, (box, face)


def contains(region, box) -> bool:
    return (
        region[0] <= box[0]
        and box[0] + box[2] <= region[0] + region[2]
        and region[1] <= box[1]
        and box[1] + box[3] <= region[1] + region[3]
    )


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skdata.astronaut()


@pytest.fixture(scope="module")
def background() -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return np.stack([60 + 100 * xx / W, 80 + 60 * yy / H, 120 - 40 * xx / W], axis=-1).astype(
        np.uint8
    )


def noise(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def make_clip(astronaut, background, offsets):
    """Frames with the head patch at ``offsets``; returns frames and true face boxes."""
    patch = astronaut[PATCH_Y : PATCH_Y + PATCH, PATCH_X : PATCH_X + PATCH]
    frames, faces = [], []
    for ox, oy in offsets:
        frame = background.copy()
        frame[oy : oy + PATCH, ox : ox + PATCH] = patch
        frames.append(frame)
        faces.append((ox + FACE_IN_PATCH[0], oy + FACE_IN_PATCH[1], FACE[2], FACE[3]))
    return np.stack(frames), faces


#: A face moving right and down across the frame (8 frames).
MOVING = [(int(x), int(y)) for x, y in zip(np.linspace(0, 312, 8), np.linspace(0, 88, 8))]


@pytest.fixture(scope="module")
def moving(astronaut, background):
    return make_clip(astronaut, background, MOVING)


@pytest.fixture(scope="module")
def moving_per_frame(moving) -> FaceCrops:
    return crop_faces(moving[0], track="per-frame")


@pytest.fixture(scope="module")
def moving_median(moving) -> FaceCrops:
    return crop_faces(moving[0])


# --------------------------------------------------------------------------- detect_faces


def test_detect_faces_finds_the_astronaut(astronaut):
    boxes = detect_faces(astronaut)
    assert len(boxes) == 1
    assert_is_face(boxes[0], FACE)
    assert all(type(v) is int for v in boxes[0])


def test_detect_faces_returns_full_resolution_coordinates(astronaut):
    big = np.repeat(np.repeat(astronaut, 2, axis=0), 2, axis=1)  # 1024x1024
    boxes = detect_faces(big, max_side=640)  # detected on a 640x640 copy
    face2 = tuple(2 * v for v in FACE)
    assert boxes, "no face in the upscaled photo"
    assert_is_face(boxes[0], face2, tol=2 * TOL)  # largest first


def test_detect_faces_no_face(astronaut):
    assert detect_faces(noise(0)) == []
    assert detect_faces(skdata.rocket()) == []
    # grey input is accepted too
    grey = (astronaut.astype(np.float32) @ [0.299, 0.587, 0.114]).astype(np.uint8)
    assert_is_face(detect_faces(grey)[0], FACE)


def test_detect_faces_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        detect_faces(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        detect_faces(np.zeros((32, 32, 4), np.uint8))


# --------------------------------------------------------------------------- crop_faces


def test_per_frame_crops_follow_the_face(moving, moving_per_frame):
    frames, faces = moving
    crops = moving_per_frame
    assert crops.found == [True] * 8
    for box, face, region in zip(crops.boxes, faces, crops.regions):
        assert_is_face(box, face)
        assert region[2] == region[3]  # square
        assert contains(region, face)  # the whole true face is in the crop
        # margin 0.25 on each side: side = 1.5 x the detected side
        assert region[2] == round(1.5 * box[2])
    # the crop window moves with the face
    centres = np.array([(x + s / 2, y + s / 2) for x, y, s, _ in crops.regions])
    truth = np.array([(x + w / 2, y + h / 2) for x, y, w, h in faces])
    assert np.abs(centres - truth).max() <= TOL
    assert np.all(np.diff(centres[:, 0]) > 0) and np.all(np.diff(centres[:, 1]) > 0)
    # crops are the frames' pixels in those windows (resized to the common side)
    side = crops.frames.shape[1]
    assert crops.frames.shape == (8, side, side, 3) and crops.frames.dtype == np.uint8
    for i, (x, y, s, _) in enumerate(crops.regions):
        if s == side:
            np.testing.assert_array_equal(crops.frames[i], frames[i, y : y + s, x : x + s])


def test_per_frame_crop_is_the_face(moving_per_frame):
    # the detector finds the face again, centred, in every crop
    crops = moving_per_frame
    side = crops.frames.shape[1]
    for crop in crops.frames:
        boxes = detect_faces(crop)
        assert boxes
        x, y, w, h = boxes[0]
        assert abs(x + w / 2 - side / 2) <= TOL and abs(y + h / 2 - side / 2) <= TOL
        assert w >= side / 2


def test_median_track_uses_one_box(moving, moving_median):
    frames, faces = moving
    crops = moving_median
    assert crops.found == [True] * 8
    assert len(set(crops.regions)) == 1
    x, y, s, _ = crops.regions[0]
    # the median centre of the face track (between frames 3 and 4)
    cx = np.median([f[0] + f[2] / 2 for f in faces])
    cy = np.median([f[1] + f[3] / 2 for f in faces])
    assert abs(x + s / 2 - cx) <= TOL and abs(y + s / 2 - cy) <= TOL
    assert crops.frames.shape == (8, s, s, 3)  # size=None: the median crop's own side
    np.testing.assert_array_equal(crops.frames, frames[:, y : y + s, x : x + s])


def test_median_track_is_stable_against_jitter_and_outliers(astronaut, background):
    # a face jittering by a few pixels around (150, 40), one frame far away
    offsets = [
        (150, 40),
        (153, 42),
        (147, 38),
        (151, 41),
        (149, 39),
        (300, 80),
        (152, 40),
        (148, 41),
    ]
    frames, faces = make_clip(astronaut, background, offsets)
    crops = crop_faces(frames, size=112)
    assert crops.found == [True] * 8
    assert crops.frames.shape == (8, 112, 112, 3)
    assert len(set(crops.regions)) == 1
    region = crops.regions[0]
    for i, face in enumerate(faces):
        if i != 5:
            assert contains(region, face), (i, region, face)  # not pulled by the outlier
    assert not contains(region, faces[5])


def test_frames_without_a_face_borrow_the_nearest_box(moving):
    frames, faces = moving
    frames = frames.copy()
    frames[0] = noise(1)
    frames[3] = noise(2)
    crops = crop_faces(frames, track="per-frame", size=96)
    assert crops.found == [False, True, True, False, True, True, True, True]
    assert crops.boxes[0] is None and crops.boxes[3] is None
    assert crops.regions[0] == crops.regions[1]
    assert crops.regions[3] == crops.regions[2]  # tie between frames 2 and 4: the earlier
    assert crops.frames.shape == (8, 96, 96, 3)
    median = crop_faces(frames)
    assert median.found == crops.found and len(set(median.regions)) == 1


def test_no_face_gives_centre_squares(moving_median, astronaut, background):
    # a clip with faces first: its box must not leak into the next clip
    assert moving_median.any_found
    rocket = skdata.rocket()[:H, 64 : 64 + W]
    frames = np.stack([noise(10 + i) for i in range(4)] + [rocket] * 4)
    crops = crop_faces(frames)
    assert crops.found == [False] * 8 and not crops.any_found
    assert crops.boxes == [None] * 8
    left = (W - H) // 2
    assert crops.regions == [(left, 0, H, H)] * 8
    np.testing.assert_array_equal(crops.frames, frames[:, :, left : left + H])
    resized = crop_faces(frames, size=64, track="per-frame")
    assert resized.frames.shape == (8, 64, 64, 3) and resized.found == [False] * 8


def test_crop_is_clamped_to_the_image(astronaut, background):
    # face near the top-left corner: a 0.75 margin would reach outside the frame
    frames, faces = make_clip(astronaut, background, [(0, 0)] * 2)
    crops = crop_faces(frames, margin=0.75)
    x, y, s, _ = crops.regions[0]
    assert (x, y) == (0, 0) and s == round(2.5 * crops.boxes[0][2])
    assert contains(crops.regions[0], faces[0])
    # a margin larger than the frame: capped at the shorter side
    huge = crop_faces(frames, margin=5.0)
    assert huge.regions[0][2] == H and huge.frames.shape == (2, H, H, 3)


def test_crop_faces_rejects_bad_arguments(moving):
    frames = moving[0][:1]
    with pytest.raises(ValueError, match="track"):
        crop_faces(frames, track="mean")
    with pytest.raises(ValueError, match="margin"):
        crop_faces(frames, margin=-0.1)
    with pytest.raises(ValueError, match="shape"):
        crop_faces(frames[0])
    with pytest.raises(ValueError, match="uint8"):
        crop_faces(frames.astype(np.float32))


# --------------------------------------------------------------------------- integration


def test_preprocess_frames_face_crop(moving, moving_median):
    torch = pytest.importorskip("torch")
    from affectgpt.media import preprocess_frames

    frames = moving[0]
    pixels = preprocess_frames(frames, face_crop=True)
    assert pixels.shape == (8, 3, 224, 224) and pixels.dtype == torch.float32
    torch.testing.assert_close(pixels, preprocess_frames(moving_median.frames), rtol=0, atol=0)
    # default off: unchanged
    torch.testing.assert_close(
        preprocess_frames(frames, face_crop=False), preprocess_frames(frames), rtol=0, atol=0
    )
    assert preprocess_frames(frames[:, :, :, :], 64, face_crop=True).shape == (8, 3, 64, 64)


def test_missing_opencv_names_the_extra(monkeypatch, astronaut):
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'affectgpt\[faces\]'"):
        detect_faces(astronaut)


def test_import_media_does_not_import_opencv():
    code = (
        "import sys, affectgpt.media as m\n"
        "assert 'cv2' not in sys.modules\n"
        "assert 'crop_faces' in dir(m) and 'FaceCrops' in m.__all__\n"
        "m.crop_faces\n"
        "assert 'affectgpt.media.faces' in sys.modules and 'cv2' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
