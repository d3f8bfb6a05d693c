"""The LLM merge with the packaged SmolLM2: short, no loop, ends with labels; replies that
do not fit are retried and then replaced by a fallback that says so."""

from __future__ import annotations

import pytest

from affectgpt.clues.fusion import fuse
from affectgpt.clues.labels import EMOTIONS, ClueReading
from affectgpt.clues.merge import cut_repetition, merge_clues, parse_description, parse_reply

pytest.importorskip("transformers")

#: the reply the issue quotes: the greedy merge looping to its token limit
LOOP = ("The person's emotional state is positive. " + "It is a mix of positive and negative "
        "emotions, a mix of emotions and humor. " * 12)


def reading(modality, label, p=0.8):
    rest = (1 - p) / (len(EMOTIONS) - 1)
    return ClueReading.from_scores(modality, {e: p if e == label else rest for e in EMOTIONS},
                                   f"{modality} reads {label}.")


def test_loops_are_cut_and_refused():
    cut = cut_repetition(LOOP)
    assert cut.count("a mix of emotions and humor") == 1 and len(cut) < len(LOOP) / 5
    with pytest.raises(ValueError, match="repeats itself"):
        parse_reply(f"Description: {LOOP}\nLabels: [happy]")


def test_structured_reply():
    text, labels = parse_reply("Description: She frowns and shouts at him.\nLabels: [angry, "
                               "annoyed]")
    assert text == "She frowns and shouts at him." and labels == ["angry", "annoyed"]
    for bad in ("She frowns.", "Description: She frowns and shouts.\nLabels: []"):
        with pytest.raises(ValueError):
            parse_reply(bad)
    with pytest.raises(ValueError):
        parse_description("Description: The person")


@pytest.fixture(scope="module")
def smollm2():
    from affectgpt.clues.merge import LocalChatModel

    return LocalChatModel()


@pytest.fixture(scope="module")
def angry_clues():
    readings = [reading("face", "angry"), reading("text", "angry"),
                ClueReading.unavailable("prosody", "No speech is heard.", "no speech")]
    return readings, fuse(readings)


def test_packaged_llm_writes_a_short_description(smollm2, angry_clues):
    readings, fusion = angry_clues
    result = merge_clues(smollm2, readings, fusion, max_tokens=60)
    assert result.labels_source == "clues" and result.labels == ["angry"]
    words = result.description.split()
    assert 6 <= len(words) <= 80 and result.description.startswith("The person")
    assert cut_repetition(result.description) == result.description
    assert result.reply.startswith("Description: The person")


def test_unusable_replies_end_in_a_marked_fallback(smollm2, angry_clues):
    readings, fusion = angry_clues
    # 3 tokens cannot hold a description and a labels line: retried, then the fallback
    result = merge_clues(smollm2, readings, fusion, decide="llm", max_tokens=3, max_attempts=2)
    assert result.attempts == 2 and "invalid reply" in result.reason
    assert result.labels_source in ("lexicon-fallback", "clues-fallback")
    assert result.labels  # never empty
    tiny = merge_clues(smollm2, readings, fusion, max_tokens=2, max_attempts=1)
    assert tiny.labels_source == "clues-fallback" and tiny.labels == ["angry"]
    assert "face reads angry" in tiny.description
