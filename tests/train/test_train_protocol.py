"""The training protocol: validation carved from the training side chooses the checkpoint;
the test split is scored every epoch but chooses only under the explicit paper protocol."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from pipeline_fixtures import REAL_ENCODERS, make_corpus, require_media_stack  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    require_media_stack()
    return make_corpus(tmp_path_factory.mktemp("protocol"))


def _stage(corpus, out, manifest="train", **train):
    from affectgpt.features.sources import FeatureSettings
    from affectgpt.train import TrainConfig
    from affectgpt.train.pipeline import EvalSettings, train_stage

    cfg = TrainConfig(**{"out_dir": str(out), "epochs": 3, "batch_size": 2, "lr": 1e-3,
                         "progress": False, **train})
    return train_stage("tiny", overrides=REAL_ENCODERS, train=cfg, manifest=corpus[manifest],
                       eval_manifest=corpus["fine"], features=FeatureSettings(progress=False),
                       evaluation=EvalSettings(max_new_tokens=4, batch_size=5))


def _first_best(evals, metric):
    values = [e["scores"][metric] for e in evals]
    return evals[values.index(max(values))]["epoch"]


def test_checkpoint_is_chosen_on_validation_with_a_test_split_present(corpus, tmp_path):
    from affectgpt.data.splits import read_split
    from affectgpt.train.checkpoint import read_pointer

    out = tmp_path / "run"
    r = _stage(corpus, out, val_size=1).results
    evals = [json.loads(line) for line in (out / "eval_log.jsonl").read_text().splitlines()]
    # the test split is there and scored every epoch (curves) ...
    assert all({"val/avg", "test/avg", "whole/avg"} <= set(e["scores"]) for e in evals)
    assert [e["epoch"] for e in evals] == [1, 2, 3]
    # ... but the checkpoint was chosen on validation
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best"]["metric"] == "val/avg"
    assert r["train_config"]["best_metric"] == "val/avg"
    assert r["protocol"]["select_on"] == "val"
    assert r["protocol"]["selection"] == r["scores"]["selection"] == "best epoch on validation"
    assert r["protocol"]["selected_epoch"] == _first_best(evals, "val/avg")
    assert r["scores"]["selected"] == evals[r["protocol"]["selected_epoch"] - 1]["scores"]
    assert r["exported_from"] == str(read_pointer(out, "best"))
    # no best-over-epochs value of a test-side metric is reported outside the paper protocol
    assert set(r["scores"]["curves"]["test/avg"]) == {"last"}
    assert "best" in r["scores"]["curves"]["val/avg"]
    # the validation sample came out of the training samples, written down, never trained on
    val = r["protocol"]["validation"]
    assert val["n"] == 1 and r["samples"]["train"] == 2 and r["samples"]["val"] == 1
    assignment = read_split(val["file"])
    assert [n for n, part in assignment.items() if part == "val"] == val["names"]
    train_names = {s.name for s in corpus["samples"] if s.split == "train"}
    assert set(assignment) == train_names
    saved = json.loads((out / "predictions" / "epoch-0001.json").read_text())
    assert [p["name"] for p in saved["validation"]] == val["names"]


def test_paper_protocol_is_explicit_and_labelled(corpus, tmp_path):
    out = tmp_path / "paper"
    r = _stage(corpus, out, val_size=1, select_on="test").results
    evals = [json.loads(line) for line in (out / "eval_log.jsonl").read_text().splitlines()]
    assert r["train_config"]["best_metric"] == "test/avg"
    assert r["protocol"]["selection"] == "best epoch on test (paper protocol)"
    assert r["protocol"]["selected_epoch"] == _first_best(evals, "test/avg")
    assert r["scores"]["curves"]["test/avg"]["selection"] == "best epoch on test (paper protocol)"


def test_test_data_cannot_choose_or_train_without_the_paper_protocol(corpus, tmp_path):
    from affectgpt.train import TrainConfig

    for metric in ("test/avg", "whole/avg", "test/recall"):
        with pytest.raises(ValueError, match="paper protocol"):
            TrainConfig(best_metric=metric)
    assert TrainConfig(best_metric="test/avg", select_on="test").selection_label == \
        "best epoch on test (paper protocol)"
    with pytest.raises(ValueError, match="select_on"):
        TrainConfig(select_on="best")
    # the whole fine manifest holds its test clips: training on it is refused
    with pytest.raises(ValueError, match="test samples of the eval manifest"):
        _stage(corpus, tmp_path / "leak", manifest="fine")


def test_no_validation_sample_exports_the_last_checkpoint(corpus, tmp_path):
    r = _stage(corpus, tmp_path / "noval", val_size=0, epochs=2).results
    assert r["train_config"]["best_metric"] is None
    assert r["protocol"]["selection"] == "last epoch (no selection) (no validation sample)"
    assert r["scores"]["selected_epoch"] == 2
