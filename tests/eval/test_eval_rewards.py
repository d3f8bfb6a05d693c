"""Reward components for RL on hand-computed cases (the real emotion-wheel tables)."""

from __future__ import annotations

import json

import pytest

from affectgpt.eval.lexical import DEFAULT_WORDNET_SOURCE, LexicalGrouper
from affectgpt.eval.rewards import (
    CompositeReward,
    FormatReward,
    KeywordReward,
    LabelGamingPenalty,
    LengthPenalty,
    Reward,
    RewardInputError,
    RewardSettings,
    SetMetricReward,
    WheelReward,
    answer_labels,
)
from affectgpt.eval.wheel import WheelResources

needs_wordnet = pytest.mark.skipif(not (DEFAULT_WORDNET_SOURCE / "data.noun").is_file(),
                                   reason="WordNet (wordnet-base) not installed")


@pytest.fixture(scope="module")
def wheel(wheel_dir) -> WheelResources:
    return WheelResources.load(wheel_dir)


# --------------------------------------------------------------------------- wheel
# Mappings read off the shared tables (M3, wheels 1..5):
#   happy   level 1: happy happy joyful joy powerful; level 2: joyful content cheerful acceptance proud
#   joyful  level 1: as happy;                        level 2: accepted accepted cheerful acceptance proud
#   sad     level 1: sad x5;                          level 2: depressed depressed depressed disappointed depressed
#   angry   level 1: mad angry mad anger mad;         level 2: anger aggressive angry aggressive angry
#   nervous level 1: scared fearful scared fear scared; level 2: anxious anxious anxious worried anxious
#   surprised: wheel 5 maps it to nothing.
def test_wheel_reward_by_hand(wheel):
    both = WheelReward(wheel)
    assert both("", ["happy"], ["happy"]) == pytest.approx(1.0)
    # joyful: level 1 agrees on all 5 wheels; level 2 only on wheels 3, 4, 5
    assert WheelReward(wheel, levels=(1,))("", ["joyful"], ["happy"]) == pytest.approx(1.0)
    assert WheelReward(wheel, levels=(2,))("", ["joyful"], ["happy"]) == pytest.approx(0.6)
    assert both("", ["joyful"], ["happy"]) == pytest.approx(0.8)
    # one right, one wrong of two: P = R = 1/2 on every wheel and level
    assert both("", ["happy", "angry"], ["happy", "sad"]) == pytest.approx(0.5)
    # four distinct clusters for one gold label: P = 1/4, R = 1, F = 0.4 everywhere
    assert both("", ["happy", "sad", "angry", "nervous"], ["happy"]) == pytest.approx(0.4)
    # an empty or unmappable prediction scores 0; so does a gold set that maps to nothing
    assert both("", [], ["happy"]) == 0.0
    assert both("", ["qwertyuiop"], ["happy"]) == 0.0
    assert both("", ["happy"], ["qwertyuiop"]) == 0.0
    # wheel 5 has no 'surprised': that (wheel, level) is left out, not scored 0
    assert both("", ["surprised"], ["surprised"]) == pytest.approx(1.0)
    assert isinstance(both, Reward)


def test_wheel_reward_rejects_bad_levels(wheel):
    with pytest.raises(ValueError, match="levels"):
        WheelReward(wheel, levels=(3,))
    with pytest.raises(ValueError, match="wheels"):
        WheelReward(wheel, wheels=())


# --------------------------------------------------------------------------- 2024 set metric
def test_set_metric_reward_verbatim_and_stored(tmp_path):
    verbatim = SetMetricReward(None)
    # gold {happy, sad}, prediction {happy, angry, calm}: accuracy 1/3, recall 1/2
    assert verbatim("", ["happy", "angry", "calm"], ["happy", "sad"]) == pytest.approx(5 / 12)
    assert SetMetricReward(None, measure="accuracy")("", ["happy", "angry", "calm"],
                                                     ["happy", "sad"]) == pytest.approx(1 / 3)
    assert SetMetricReward(None, measure="recall")("", ["happy", "angry", "calm"],
                                                   ["happy", "sad"]) == pytest.approx(0.5)
    assert verbatim("", [], ["happy"]) == 0.0
    stored = {"s1": [["happy", "joyful"], ["sad"]]}
    reward = SetMetricReward(stored)
    # joyful -> happy: accuracy 1/1, recall 1/2
    assert reward("", ["joyful"], ["happy", "sad"], sample="s1") == pytest.approx(0.75)
    with pytest.raises(RewardInputError, match="s2"):
        reward("", ["joyful"], ["happy"], sample="s2")
    # RewardSettings reads stored groupings from a file
    path = tmp_path / "groups.json"
    path.write_text(json.dumps({"s1": [["happy", "joyful"], ["sad"]]}), encoding="utf-8")
    built = RewardSettings(weights={"set": 1.0}, set_grouping=str(path)).build()
    assert built("", ["joyful"], ["happy", "sad"], sample="s1") == pytest.approx(0.75)
    with pytest.raises(ValueError, match="measure"):
        SetMetricReward(None, measure="f1")
    with pytest.raises(TypeError):
        SetMetricReward(grouping=42)


@needs_wordnet
def test_set_metric_reward_lexical_grouping():
    reward = SetMetricReward(LexicalGrouper())
    # angry ~ anger (one word family): accuracy 1, recall 1
    assert reward("", ["anger"], ["angry"]) == pytest.approx(1.0)
    # happy and sad never group: 0
    assert reward("", ["sad"], ["happy"]) == 0.0


# --------------------------------------------------------------------------- format
@pytest.mark.parametrize("text, labels", [
    ("He smiles and laughs. Labels: ['happy', 'excited']", ["happy", "excited"]),
    ("He smiles and laughs. ['happy', 'excited'].", ["happy", "excited"]),
    ("Words about the scene. [happy]  ", ["happy"]),
    ("He frowns. []", []),
    ("He frowns. ['sad' and more", None),
    ("He frowns, sad.", None),
    ("['happy'] and then he leaves", None),
])
def test_answer_labels_trailing_list(text, labels):
    assert answer_labels(text) == labels


def test_format_reward_layouts():
    labels = FormatReward()
    assert labels("The voice rises. ['excited', 'happy']", [], []) == 1.0
    assert labels("The voice rises; he is excited.", [], []) == 0.0
    assert labels("The voice rises. []", [], []) == 0.0  # an empty answer earns nothing
    assert FormatReward(allow_empty=True)("The voice rises. []", [], []) == 1.0
    think = FormatReward("think-answer")
    good = "<think>Smiles and a rising voice.</think>\n<answer>['happy', 'excited']</answer>"
    assert think(good, [], []) == 1.0
    assert answer_labels(good, "think-answer") == ["happy", "excited"]
    assert answer_labels("<think>x</think><answer>happy, tense</answer>", "think-answer") == [
        "happy", "tense"]
    assert think("<think> </think><answer>['happy']</answer>", [], []) == 0.0  # no reasoning
    assert think("<answer>['happy']</answer>", [], []) == 0.0
    assert think(good + " trailing words", [], []) == 0.0
    assert think("<think>x</think><answer>['happy'</answer>", [], []) == 0.0
    with pytest.raises(ValueError, match="layout"):
        FormatReward("json")


# --------------------------------------------------------------------------- penalties
def test_length_penalty_by_hand():
    penalty = LengthPenalty(10, rate=0.1, cap=0.5)
    assert penalty(" ".join(["w"] * 10), [], []) == 0.0
    assert penalty(" ".join(["w"] * 13), [], []) == pytest.approx(-0.3)
    assert penalty(" ".join(["w"] * 40), [], []) == pytest.approx(-0.5)  # capped
    short = LengthPenalty(10, minimum=4, rate=0.1)
    assert short("a b", [], []) == pytest.approx(-0.2)
    assert short("", [], []) == pytest.approx(-0.4)
    chars = LengthPenalty(5, rate=0.5, unit="chars")
    assert chars("abcdefg", [], []) == pytest.approx(-1.0)
    assert LengthPenalty(None, minimum=2, rate=1.0)(" ".join(["w"] * 500), [], []) == 0.0
    with pytest.raises(ValueError, match="unit"):
        LengthPenalty(10, unit="tokens")
    with pytest.raises(ValueError, match="minimum"):
        LengthPenalty(3, minimum=5)


def test_label_gaming_penalty_by_hand():
    penalty = LabelGamingPenalty(3, per_extra=0.1, per_duplicate=0.25)
    assert penalty("", ["happy", "sad", "angry"], ["happy"]) == 0.0
    # 5 labels: 2 beyond 3 -> -0.2
    assert penalty("", ["happy", "sad", "angry", "calm", "tense"], []) == pytest.approx(-0.2)
    # "Happy!" repeats "happy" after normalisation -> one duplicate
    assert penalty("", ["happy", "Happy!"], []) == pytest.approx(-0.25)
    capped = LabelGamingPenalty(1, per_extra=0.5, cap=1.0)
    assert capped("", ["a", "b", "c", "d", "e"], []) == pytest.approx(-1.0)
    with pytest.raises(TypeError):
        LabelGamingPenalty(grouper=object())


@needs_wordnet
def test_label_gaming_penalty_with_grouper():
    penalty = LabelGamingPenalty(10, per_duplicate=0.2, grouper=LexicalGrouper())
    # angry / anger / angered are one word family: two near-duplicates
    assert penalty("", ["angry", "anger", "angered", "sad"], []) == pytest.approx(-0.4)


def test_keyword_reward():
    happy = KeywordReward("happy")
    assert happy("She looks Happy today.", [], []) == 1.0
    assert happy("She looks unhappy today.", [], []) == 0.0  # whole words only
    assert KeywordReward("happy", whole_word=False)("unhappy", [], []) == 1.0
    with pytest.raises(ValueError):
        KeywordReward("")


# --------------------------------------------------------------------------- composite
def test_composite_reward_weights_and_breakdown(wheel):
    reward = CompositeReward([(WheelReward(wheel), 1.0), (FormatReward(), 0.5),
                              (LengthPenalty(5, rate=0.1), 2.0)])
    text = "He smiles widely and laughs loudly. ['joyful']"  # 7 words: 2 beyond 5
    out = reward.score(text, ["joyful"], ["happy"], sample="s1")
    assert out.components == pytest.approx({"wheel": 0.8, "format": 1.0, "length": -0.2})
    assert out.total == pytest.approx(0.8 + 0.5 * 1.0 + 2.0 * -0.2)
    assert reward(text, ["joyful"], ["happy"]) == pytest.approx(out.total)
    assert reward.names == ["wheel", "format", "length"]
    named = CompositeReward({"fmt": (FormatReward(), 1.0), "fmt2": (FormatReward(), 3.0)})
    assert named.score(text, [], []).total == pytest.approx(4.0)
    with pytest.raises(ValueError, match="unique"):
        CompositeReward([(FormatReward(), 1.0), (FormatReward(), 1.0)])
    with pytest.raises(ValueError, match="at least one"):
        CompositeReward([])

    class Broken:
        name = "broken"

        def __call__(self, text, labels, gold, *, sample=None):
            return float("nan")

    with pytest.raises(ValueError, match="broken"):
        CompositeReward([(Broken(), 1.0)]).score("", [], [])


def test_reward_settings_build(wheel_dir):
    settings = RewardSettings(wheel_dir=str(wheel_dir), length_target=3, length_rate=0.1,
                              max_labels=1, per_extra_label=0.2)
    reward = settings.build()
    assert reward.names == ["wheel", "length", "gaming"]
    out = reward.score("a b c d e", ["happy", "sad"], ["happy"])
    # wheel: P = 1/2, R = 1 -> F = 2/3 everywhere; length: 2 words over -> -0.2; one extra label
    assert out.components == pytest.approx({"wheel": 2 / 3, "length": -0.2, "gaming": -0.2})
    assert out.total == pytest.approx(2 / 3 - 0.4)
    with pytest.raises(ValueError, match="wheel_dir"):
        RewardSettings().build()
    with pytest.raises(ValueError, match="unknown reward components"):
        RewardSettings(weights={"fun": 1.0}).build()
    assert RewardSettings(weights={"format": 1.0, "wheel": 0.0}).build().names == ["format"]
