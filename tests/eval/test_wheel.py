"""Emotion-wheel metrics on hand-made tables (hand-computed answers) and the shared ones."""

import pytest

from affectgpt.eval.wheel import (
    WHEEL_METHODS,
    WheelResources,
    evaluate_wheel,
    hit_rate,
    sentiment_f1,
    weighted_f1,
)


def test_mappings_by_hand(tiny_wheel):
    r = tiny_wheel
    assert r.m1("joyfulness") == "joyful"
    assert r.m1("unknownword") is None
    # joyful is a synonym of happy (run 1) -> M2 happy
    assert r.m2("joyfulness") == "happy"
    assert r.m2("unhappiness") == "sad"
    # satisfaction -> satisfied -> pleased; wheel 1 puts pleased under Happy/Content
    assert r.m3("satisfaction", 1, 1) == "happy"
    assert r.m3("satisfaction", 1, 2) == "content"
    assert r.m3("satisfaction", 2, 1) == "sad"  # wheel 2 disagrees
    assert r.m3("happiness", 1, 2) == "content"  # a root maps to its sorted-first child at level 2
    assert r.map_labels(["Joyful", "nonsense", "sadness"], "m1") == {"joyful", "sad"}


def test_wheel_scores_by_hand(tiny_wheel):
    gold = {"s1": ["happiness", "sadness"], "s2": ["joyfulness"], "s3": ["xyz"]}
    pred = {"s1": ["joyful"], "s2": ["unhappy", "gibberish"], "s3": ["happy"]}
    res = evaluate_wheel(gold, pred, tiny_wheel)
    by = res.by_method()
    # M1: s1 gold {happy, sad} pred {joyful}: 0/1, 0/2; s2 gold {joyful} pred {unhappy}: 0, 0;
    # s3 skipped (gold maps to nothing)
    assert by["m1"].num_samples == 2 and by["m1"].fscore == 0.0
    # M2: s1 gold {happy, sad} pred {happy}: P=1 R=.5; s2 gold {happy} pred {sad}: 0, 0
    assert by["m2"].precision == pytest.approx(0.5) and by["m2"].recall == pytest.approx(0.25)
    assert by["m2"].fscore == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    # M3 wheel 1 level 1: same as M2 here (happy/sad are roots)
    assert by["m3-w1-l1"].precision == pytest.approx(0.5)
    assert len(res.scores) == 12 and [s.method for s in res.scores] == list(WHEEL_METHODS)
    assert res.m_avg == pytest.approx(sum(s.fscore for s in res.scores) / 12)
    assert res.ew_fscore(1) == pytest.approx(sum(by[f"m3-w{k}-l1"].fscore for k in range(1, 6)) / 5)


def test_hit_rate_by_hand(tiny_wheel):
    gold = {"a": ["happy"], "b": ["sad"], "c": ["neutral"]}
    pred = {"a": ["joyful", "sad"], "b": ["happy"], "c": ["happy"]}
    hr = hit_rate(gold, pred, tiny_wheel)
    assert hr["wheel1"] == 0.5 and hr["wheel1_samples"] == 2  # c skipped
    assert hr["mean"] == 0.5


def test_sentiment_by_hand(tiny_wheel):
    gold = {"a": 1.5, "b": -2.0, "c": 0.0, "d": 0.4}
    pred = {"a": ["joyful"], "b": ["unhappy"], "c": ["sad"], "d": ["negative"]}
    res = sentiment_f1(gold, pred, tiny_wheel)
    assert res["num_samples"] == 3  # c dropped (gold == 0)
    # truth [T, F, T], pred [T, F, F]: F1(T)=2/3 (support 2), F1(F)=2/3 (support 1)
    assert res["weighted_f1"] == pytest.approx(2 / 3)
    assert weighted_f1([True, True], [True, True]) == 1.0


def test_shared_tables(wheel_dir, mer2024_ov):
    from affectgpt.eval.labels import read_labels

    r = WheelResources.load(wheel_dir)
    assert len(r.format_mapping) == 7386
    assert len(r.raw_mapping) == 1255
    gold = read_labels(mer2024_ov / "check-openset.csv")
    res = evaluate_wheel(gold, gold, r)
    assert all(s.fscore == 1.0 for s in res.scores)  # gold against itself
    pred = read_labels(mer2024_ov / "predict-openset.csv")
    res = evaluate_wheel(gold, pred, r)
    assert 0.3 < res.ew_fscore(1) < 0.8 and 0.2 < res.m_avg < res.ew_fscore(1)


def test_missing_resources(tmp_path):
    with pytest.raises(FileNotFoundError):
        WheelResources.load(tmp_path / "nope")
    tmp_path.joinpath("x").mkdir()
    with pytest.raises(FileNotFoundError, match="wheel1.xlsx"):
        WheelResources.load(tmp_path / "x")
