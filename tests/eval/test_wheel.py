"""Emotion-wheel metrics on hand-made tables (hand-computed answers) and the shared ones."""

import csv
import re
from pathlib import Path

import openpyxl
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


# Emotion-wheel scores of the released MER2024-OV predictions against their gold labels
# (python label syntax; the mertools syntax gives the same scores on these files). EW-L1
# and M-avg are quoted (x100) in the README.
MER2024_OV_WHEEL = {
    "m1": 0.29120388952538445, "m2": 0.3280487459318136,
    "m3-w1-l1": 0.563997340619006, "m3-w2-l1": 0.5751191579504831,
    "m3-w3-l1": 0.5539711695454155, "m3-w4-l1": 0.5469655913803887,
    "m3-w5-l1": 0.5284762752975063,
    "m3-w1-l2": 0.4198336629702473, "m3-w2-l2": 0.42127716729674913,
    "m3-w3-l2": 0.44518846569647896, "m3-w4-l2": 0.41911918457777914,
    "m3-w5-l2": 0.4170132638566238,
}
MER2024_OV_EW_L1 = 0.5537059069585599
MER2024_OV_M_AVG = 0.45918449288732294
README = Path(__file__).resolve().parents[2] / "README.md"


def reference_ew_level1(gold: dict, pred: dict, wheel_dir: Path) -> list[float]:
    """The level-1 EW F-score of each wheel, written from REFERENCE.md section 2 alone
    (openpyxl and csv, no library code): forms -> base words, merged synonym runs -> wheel
    words, the sorted-first candidate a wheel holds -> its level-1 root; unmappable labels
    dropped, samples with no mapped gold skipped, F of the mean precision and recall."""
    def rows(name):
        sheet = openpyxl.load_workbook(wheel_dir / name, read_only=True).worksheets[0]
        table = [list(r) for r in sheet.iter_rows(values_only=True)]
        return [dict(zip(table[0], r)) for r in table[1:]]

    def words(cell):
        return [w.strip().lower() for w in re.split(r"[\[\]'\",]", cell or "") if w.strip()]

    bases: dict[str, set] = {}
    with open(wheel_dir / "format.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            for form in words(row["format"]) + [row["name"].strip().lower()]:
                bases.setdefault(form, set()).add(row["name"].strip().lower())
    synonyms: dict[str, set] = {}
    for row in rows("synonym.xlsx"):
        for run in range(1, 9):
            if row[f"word_run{run}"]:
                word = str(row[f"word_run{run}"]).strip().lower()
                for synonym in [word] + words(row[f"synonym_run{run}"]):
                    synonyms.setdefault(synonym, set()).add(word)
    fscores = []
    for k in range(1, 6):
        root_of, current = {}, [None, None, None]
        for row in rows(f"wheel{k}.xlsx"):
            current = [str(row[c]).strip().lower() if row[c] else current[i]
                       for i, c in enumerate(("level1", "level2", "level3"))]
            for word in current:
                root_of[word] = current[0]

        def root(label, root_of=root_of):
            found = sorted(w for b in bases.get(label, ()) for w in synonyms.get(b, ()) if w in root_of)
            return root_of[found[0]] if found else None

        precisions, recalls = [], []
        for name in gold:
            g = {root(x) for x in gold[name]} - {None}
            p = {root(x) for x in pred.get(name, [])} - {None}
            if g:
                precisions.append(len(g & p) / len(p) if p else 0.0)
                recalls.append(len(g & p) / len(g) if p else 0.0)
        precision, recall = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
        fscores.append(2 * precision * recall / (precision + recall))
    return fscores


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
    assert {s.method: s.fscore for s in res.scores} == MER2024_OV_WHEEL
    assert res.ew_fscore(1) == MER2024_OV_EW_L1
    assert res.m_avg == MER2024_OV_M_AVG
    mertools = read_labels(mer2024_ov / "predict-openset.csv", syntax="mertools")
    assert evaluate_wheel(gold, mertools, r).m_avg == MER2024_OV_M_AVG

    independent = reference_ew_level1(gold, pred, wheel_dir)
    assert independent == pytest.approx([MER2024_OV_WHEEL[f"m3-w{k}-l1"] for k in range(1, 6)],
                                        abs=1e-12)
    assert sum(independent) / 5 == pytest.approx(MER2024_OV_EW_L1, abs=1e-12)

    text = README.read_text(encoding="utf-8")
    assert f"EW-L1 {MER2024_OV_EW_L1 * 100:.2f}" in text
    assert f"M-avg {MER2024_OV_M_AVG * 100:.2f}" in text


def test_missing_resources(tmp_path):
    with pytest.raises(FileNotFoundError):
        WheelResources.load(tmp_path / "nope")
    tmp_path.joinpath("x").mkdir()
    with pytest.raises(FileNotFoundError, match="wheel1.xlsx"):
        WheelResources.load(tmp_path / "x")
