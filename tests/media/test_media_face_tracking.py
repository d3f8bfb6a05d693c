"""The main speaker's face across frames, on real photographs composed into clips.

Faces: the astronaut photo (``skimage.data.astronaut()``; its face, measured once with
OpenCV's cascade, sits at ``FACE`` in a 200x200 head patch) and a second person from
scikit-image's Labelled-Faces-in-the-Wild subset (``skimage.data.lfw_subset()[0]``, a 25x25
face enlarged to 140x140, which the cascade finds at about 125-135 px, larger than the
astronaut's 95 px). Clips without a person: ``skimage.data.coffee()`` and
``skimage.data.chelsea()`` (a cat) panned across the frame. The moon photo
(``skimage.data.moon()``) gives the cascade a false face at its lower right corner.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2", reason="needs the faces extra (opencv-python-headless)")
skdata = pytest.importorskip("skimage.data", reason="needs scikit-image (dev extra)")

from PIL import Image, ImageFilter  # noqa: E402

from affectgpt.media import crop_faces, detect_faces, find_main_face, track_faces  # noqa: E402
from affectgpt.media.faces import MIN_COVERAGE, NO_FACE  # noqa: E402

H, W = 360, 640
PATCH = 200
#: the astronaut's face inside her 200x200 head patch (rows 20.., columns 125.. of the photo)
FACE = (52, 46, 95, 95)
TOL = 12
SPEAKER_AT = (220, 80)  # top-left of the head patch: the face is near the frame centre
PASSER_AT = (490, 100)  # top-left of the second person's face, at the right edge


def _background() -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return np.stack([60 + 100 * xx / W, 80 + 60 * yy / H, 120 - 40 * xx / W],
                    axis=-1).astype(np.uint8)


@pytest.fixture(scope="module")
def speaker() -> np.ndarray:
    return skdata.astronaut()[20:20 + PATCH, 125:125 + PATCH]


@pytest.fixture(scope="module")
def passer_by() -> np.ndarray:
    face = (skdata.lfw_subset()[0] * 255).astype(np.uint8)
    big = np.asarray(Image.fromarray(face).resize((140, 140), Image.BICUBIC))
    return np.repeat(big[..., None], 3, axis=-1)


def paste(frame, image, at) -> None:
    x, y = at
    frame[y:y + image.shape[0], x:x + image.shape[1]] = image


def speaker_face(at) -> tuple[int, int, int, int]:
    return (at[0] + FACE[0], at[1] + FACE[1], FACE[2], FACE[3])


def near(box, face, tol: int = TOL) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(box, face))


def test_a_passer_by_larger_face_does_not_take_over(speaker, passer_by):
    # the speaker in every frame (jittering a little), a larger face at the edge in 3 frames
    jitter = [(0, 0), (3, 1), (-2, 2), (1, -2), (-3, 0), (2, 2), (0, -1), (-1, 1)]
    at = [(SPEAKER_AT[0] + dx, SPEAKER_AT[1] + dy) for dx, dy in jitter]
    frames = []
    for i in range(8):
        frame = _background()
        paste(frame, speaker, at[i])
        if i in (2, 3, 4):
            paste(frame, passer_by, PASSER_AT)
        frames.append(frame)
    frames = np.stack(frames)
    # the point of the test: in those frames the detector's first (largest) hit is the other
    for i in (2, 3, 4):
        first = detect_faces(frames[i])[0]
        assert first[0] > 450 and first[2] > FACE[2] + 20, first

    main = find_main_face(frames)
    assert main.has_face and main.reason == "" and main.detected == [True] * 8
    for i, box in enumerate(main.boxes):
        assert near(box, speaker_face(at[i])), (i, box)
    assert len(main.tracks) == 2 and main.tracks[0] is main.track
    other = main.tracks[1]
    assert other.frames == [2, 3, 4] and other.size > main.track.size
    assert main.track.coverage == 1.0 and other.coverage == 3 / 8
    assert main.track.centrality > other.centrality

    for track in ("median", "per-frame", "interpolated"):
        crops = crop_faces(frames, track=track, size=64)
        assert crops.has_face and crops.found == [True] * 8
        assert all(near(b, speaker_face(a)) for b, a in zip(crops.boxes, at)), track
        for (x, y, side, _), a in zip(crops.regions, at):
            fx, fy, fw, fh = speaker_face(a)
            assert x <= fx and fx + fw <= x + side and y <= fy and fy + fh <= y + side
        assert crops.main.track is not None and crops.main.track.frames == list(range(8))


def test_missed_frames_are_interpolated(speaker):
    # the speaker walks right; in frames 3 and 4 she is motion-blurred and not detected
    xs = [40 + 50 * i for i in range(8)]
    blurred = np.asarray(Image.fromarray(speaker).filter(ImageFilter.GaussianBlur(4)))
    frames = []
    for i, x in enumerate(xs):
        frame = _background()
        paste(frame, blurred if i in (3, 4) else speaker, (x, 100))
        frames.append(frame)
    frames = np.stack(frames)
    assert detect_faces(frames[3]) == [] and detect_faces(frames[4]) == []

    main = find_main_face(frames)
    assert main.detected == [True, True, True, False, False, True, True, True]
    assert len(main.tracks) == 1  # a gap does not split the face into two tracks
    for i, x in enumerate(xs):
        assert near(main.boxes[i], speaker_face((x, 100))), (i, main.boxes[i])
    lo, hi = main.boxes[2], main.boxes[5]
    assert main.boxes[3][0] == round(lo[0] + (hi[0] - lo[0]) / 3)

    crops = crop_faces(frames, track="interpolated")
    assert crops.found == main.detected and crops.boxes[3] is None
    held = crop_faces(frames, track="per-frame")
    assert held.regions[3] == held.regions[2]  # per-frame holds the nearest box instead
    truth = speaker_face((xs[3], 100))
    centre = crops.regions[3][0] + crops.regions[3][2] / 2
    assert abs(centre - (truth[0] + truth[2] / 2)) <= TOL
    held_centre = held.regions[3][0] + held.regions[3][2] / 2
    assert abs(held_centre - (truth[0] + truth[2] / 2)) > 40


def _pan(image: np.ndarray, n: int = 6) -> np.ndarray:
    """``n`` frames of an H x W window moving across ``image`` (resized to cover it)."""
    scale = max(H / image.shape[0], (W + 20 * n) / image.shape[1])
    size = (int(np.ceil(image.shape[1] * scale)), int(np.ceil(image.shape[0] * scale)))
    big = np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))
    return np.stack([big[:H, 20 * i:20 * i + W] for i in range(n)])


@pytest.mark.parametrize("photo", ["coffee", "chelsea"])
def test_no_face_is_said_so(photo):
    frames = _pan(getattr(skdata, photo)())
    main = find_main_face(frames)
    assert not main.has_face and main.reason == NO_FACE and main.track is None
    assert main.boxes == [None] * len(frames) and main.detected == [False] * len(frames)
    crops = crop_faces(frames, track="interpolated", size=32)
    assert not crops.has_face and crops.found == [False] * len(frames)
    # the cascade does fire on these textures in a frame or two: kept out by coverage
    assert main.tracks and all(t.coverage < MIN_COVERAGE for t in main.tracks)
    assert find_main_face(frames, min_coverage=0.0).has_face


def test_one_frame_false_detection_is_not_a_face():
    moon = np.asarray(Image.fromarray(skdata.moon()).convert("RGB"))  # 512x512
    frames = _pan(skdata.coffee(), 8)
    frames[5] = np.pad(moon[512 - H:], ((0, 0), (0, W - 512), (0, 0)))
    assert detect_faces(frames[5])  # the cascade takes a crater for a face
    main = find_main_face(frames)
    assert not main.has_face and main.reason == NO_FACE
    spurious = [t for t in main.tracks if 5 in t.detections]
    assert spurious and spurious[0].coverage == 1 / 8  # reported, not taken as the speaker


def test_track_faces_links_crossing_people():
    # two faces moving towards each other, sizes 80 and 60; frame 2 misses the small one
    big = [(50 + 40 * i, 100, 80, 80) for i in range(5)]
    small = [(400 - 40 * i, 120, 60, 60) for i in range(5)]
    detections = [[b, s] if i != 2 else [b] for i, (b, s) in enumerate(zip(big, small))]
    detections[3] = detections[3][::-1]  # the detector's order is no clue
    tracks = track_faces(detections, (H, W))
    assert len(tracks) == 2
    first, second = tracks
    assert [first.detections[i] for i in range(5)] == big
    assert second.frames == [0, 1, 3, 4] and second.box_at(2) == (320, 120, 60, 60)
    assert first.score > second.score and second.coverage == 0.8
    # a face that jumps farther than max_shift face sides starts a new track
    jump = track_faces([[(0, 0, 50, 50)], [(400, 250, 50, 50)]], (H, W))
    assert [t.frames for t in jump] == [[1], [0]]  # the later one is nearer the centre
    assert len(track_faces([[(0, 0, 50, 50)], [(400, 250, 50, 50)]], (H, W),
                           max_shift=10.0)) == 1
    # a size change beyond 2x is another person
    assert len(track_faces([[(100, 100, 40, 40)], [(100, 100, 100, 100)]], (H, W))) == 2
    assert track_faces([[], []], (H, W)) == []
