"""Score-level fusion: a non-neutral clue outweighs neutral ones, unavailable clues take no
part, and an LLM's labels that contradict every clue are detected."""

from __future__ import annotations

from affectgpt.clues.fusion import FusionWeights, contradicts, fuse, select_weights
from affectgpt.clues.labels import EMOTIONS, ClueReading


def reading(modality, label, p=0.7):
    rest = (1 - p) / (len(EMOTIONS) - 1)
    return ClueReading.from_scores(modality, {e: p if e == label else rest for e in EMOTIONS},
                                   f"{modality} reads {label}")


def test_one_emotional_clue_beats_neutral_ones():
    fused = fuse([reading("face", "angry", 0.6), reading("text", "neutral", 0.6),
                  reading("prosody", "neutral", 0.4)], FusionWeights(neutral_scale=0.5))
    assert fused.labels[0] == "angry"
    assert fused.used == ["face", "text", "prosody"]


def test_unavailable_clues_are_left_out():
    no_face = ClueReading.unavailable("face", "No face is visible.", "no face found")
    fused = fuse([no_face, reading("text", "sad", 0.8)])
    assert fused.labels == ["sad"] and fused.used == ["text"]
    assert fuse([no_face]).labels == ["neutral"]


def test_second_label_when_close():
    both = fuse([reading("face", "happy", 0.8), reading("text", "surprised", 0.8)],
                FusionWeights(prosody=0, second_ratio=0.8))
    assert set(both.labels) == {"happy", "surprised"}


def test_contradiction_with_every_clue():
    angry = [reading("face", "angry"), reading("text", "angry")]
    assert contradicts(["happy"], angry)
    assert not contradicts(["angry", "happy"], angry)
    assert not contradicts(["frustrated"], angry)  # unknown valence: nothing to contradict
    assert not contradicts(["happy"], [reading("face", "happy"), reading("text", "angry")])


def test_selection_prefers_the_informative_clue():
    clips = [{"readings": [reading("face", gold), reading("text", "neutral", 0.9)],
              "labels": [gold]} for gold in ("angry", "sad", "happy")]
    best, grid = select_weights(clips, lambda pred, gold: float(pred[:1] == gold[:1]),
                                grid={"face": (0.0, 1.0), "text": (1.0,),
                                      "neutral_scale": (1.0, 0.5), "prosody": (0.0,)})
    # only the face clue with the neutral discount recovers the emotions
    assert (best.face, best.neutral_scale) == (1.0, 0.5)
    assert max(g["score"] for g in grid) == 1.0 and len(grid) == 4
