"""The facial-expression clue on real photographs: the main face is found (also in a
portrait video stored sideways), a clip without a face says so instead of guessing."""

from __future__ import annotations

import pytest

from affectgpt.clues.face import FaceExpressionClue


@pytest.fixture(scope="module")
def clue():
    return FaceExpressionClue(n_frames=6)


def test_real_face_is_read(clue, photo_clips):
    reading = clue.read(str(photo_clips["astronaut"]))
    assert reading.available and reading.measured["frames_with_face"] >= 3
    assert abs(sum(reading.scores.values()) - 1) < 1e-6
    # the astronaut smiles: the packaged CNN reads her as happy, a positive expression
    assert reading.top == "happy" and reading.valence > 0.3
    assert "happy" in reading.text and "positive" in reading.text


def test_no_face_is_said_not_guessed(clue, photo_clips):
    reading = clue.read(str(photo_clips["no_face"]))
    assert not reading.available and reading.reason == "no face found"
    assert reading.text.startswith("No face is visible")
    assert len(set(reading.scores.values())) == 1  # uniform: no part in fusion


def test_portrait_phone_video(clue, photo_clips):
    from affectgpt.media import probe

    info = probe(str(photo_clips["portrait"]))
    assert info.rotation == 90 and info.height > info.width
    reading = clue.read(str(photo_clips["portrait"]))
    assert reading.available and reading.top == "happy"
