import io
import json
import zipfile

import numpy as np
import pytest

from affectgpt.eval.grouping import load_stored_groupings, synonym_map
from affectgpt.eval.labels import LabelFormatError, read_labels
from affectgpt.eval.set_metric import EvaluationInputError, evaluate_set, mean_std, score_sample

EXPECTED = {"accuracy": 0.581777108433735, "recall": 0.4977911646586345, "avg": 0.5397841365461847}


def test_reference_numbers_exact(mer2024_ov):
    gold = read_labels(mer2024_ov / "check-openset.csv", syntax="mertools")
    pred = read_labels(mer2024_ov / "predict-openset.csv", syntax="mertools")
    groupings = load_stored_groupings(mer2024_ov / "openset-synonym.zip")
    assert len(gold) == len(pred) == len(groupings) == 332
    result = evaluate_set(gold, pred, groupings)
    assert result.accuracy == pytest.approx(EXPECTED["accuracy"], abs=1e-12)
    assert result.recall == pytest.approx(EXPECTED["recall"], abs=1e-12)
    assert result.avg == pytest.approx(EXPECTED["avg"], abs=1e-12)
    # grouping matters: without it the same predictions score about 0.215
    assert evaluate_set(gold, pred, None).avg == pytest.approx(0.2152, abs=1e-3)


def test_stored_grouping_directory_and_json_match_zip(mer2024_ov, tmp_path):
    with zipfile.ZipFile(mer2024_ov / "openset-synonym.zip") as zf:
        zf.extractall(tmp_path)
    from_zip = load_stored_groupings(mer2024_ov / "openset-synonym.zip")
    from_dir = load_stored_groupings(tmp_path / "openset-synonym")
    assert from_dir == from_zip
    js = tmp_path / "g.json"
    js.write_text(json.dumps(from_zip), encoding="utf-8")
    assert load_stored_groupings(js) == from_zip


def test_hand_computed_sample():
    groups = [["happy", "joyful"], ["angry", "mad"]]
    m = synonym_map(groups)
    acc, rec, g, p = score_sample(["joyful", "sad"], ["happy", "mad", "calm"], m)
    # gold -> {happy, sad}, pred -> {happy, angry, calm}: 1 hit of 3 predicted, of 2 gold
    assert (acc, rec) == (pytest.approx(1 / 3), 0.5)
    assert g == {"happy", "sad"} and p == {"happy", "angry", "calm"}
    assert score_sample(["happy"], [], m)[:2] == (0.0, 0.0)  # empty prediction scores 0/0


def test_later_group_wins_like_reference():
    assert synonym_map([["a", "b"], ["c", "b"]])["b"] == "c"


def test_macro_average_and_subset():
    gold = {"s1": ["happy"], "s2": ["sad"], "s3": ["angry"]}
    pred = {"s1": ["happy"], "s2": ["happy", "sad"], "s3": []}
    r = evaluate_set(gold, pred)
    assert r.accuracy == pytest.approx((1 + 0.5 + 0) / 3)
    assert r.recall == pytest.approx((1 + 1 + 0) / 3)
    assert r.avg == pytest.approx((r.accuracy + r.recall) / 2)
    sub = evaluate_set(gold, pred, names=["s2"])
    assert (sub.accuracy, sub.recall) == (0.5, 1.0)


def test_missing_predictions_and_groupings_are_errors():
    gold = {"s1": ["a"], "s2": ["b"]}
    with pytest.raises(EvaluationInputError, match="no prediction"):
        evaluate_set(gold, {"s1": ["a"]})
    r = evaluate_set(gold, {"s1": ["a"]}, allow_missing=True)
    assert r.avg == pytest.approx(0.5)
    with pytest.raises(EvaluationInputError, match="no synonym grouping"):
        evaluate_set(gold, {"s1": ["a"], "s2": ["b"]}, {"s1": [["a"]]})
    with pytest.raises(EvaluationInputError, match="no gold"):
        evaluate_set(gold, gold, names=["s3"])


def test_bad_grouping_files(tmp_path):
    z = tmp_path / "g.zip"
    buf = io.BytesIO()
    np.save(buf, np.array("[['a', 'b'], ['c'"))
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("g/s1.npy", buf.getvalue())
    with pytest.raises(LabelFormatError, match="s1"):
        load_stored_groupings(z)
    with pytest.raises(LabelFormatError, match="no groupings"):
        (tmp_path / "empty").mkdir()
        load_stored_groupings(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        load_stored_groupings(tmp_path / "missing.zip")


def test_mean_std_population():
    assert mean_std([0.5, 0.7]) == (pytest.approx(0.6), pytest.approx(0.1))
