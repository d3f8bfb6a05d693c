"""`affectgpt train` end to end on real clips (tiny model, real face-cnn + Whisper features):
feature caches, evaluation with the set metric, predictions, export, exact resume, bad media."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from pipeline_fixtures import REAL_ENCODERS, make_corpus, require_media_stack  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    require_media_stack()
    return make_corpus(tmp_path_factory.mktemp("pipeline"))


def _sets():
    return [arg for item in REAL_ENCODERS for arg in ("--set", item)]


def test_train_cli_end_to_end(corpus, tmp_path, capsys):
    from affectgpt.cli import main
    from affectgpt.features.cache import FeatureCache
    from affectgpt.model import AffectGPT
    from affectgpt.train.checkpoint import load_trainable, read_pointer

    out = tmp_path / "run"
    argv = ["train", "--preset", "tiny", *_sets(), "--stage", "2", "--manifest",
            str(corpus["fine"]), "--split", "train", "--eval-manifest", str(corpus["fine"]),
            "--out", str(out), "--select-on", "test",
            "--train", "epochs=2", "--train", "batch_size=2", "--train", "lr=1e-3",
            "--train", "progress=false", "--max-new-tokens", "6", "--eval-batch-size", "3"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"model: {out / 'model'}" in printed and "stage2: 4 steps" in printed
    assert "[checkpoint: best epoch on test (paper protocol)]" in printed

    # feature caches next to the manifests (train + eval), one per encoder; the silent
    # clip has no audio
    features = corpus["root"] / "features"
    assert len(FeatureCache(features / "face-cnn")) == 5
    assert len(FeatureCache(features / "whisper-base-clip")) == 4
    results = json.loads((out / "results.json").read_text())
    assert results["samples"]["train_without_audio"] == [corpus["silent"]]
    assert results["samples"]["train"] == 3 and results["samples"]["eval"] == 5
    assert results["features"]["train"]["audio"]["no_stream"] == [corpus["silent"]]

    # evaluation every epoch: whole / train / test set-metric scores, predictions saved
    evals = [json.loads(line) for line in (out / "eval_log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in evals] == [1, 2]
    for e in evals:
        assert {"whole/avg", "train/avg", "test/avg", "test/accuracy", "train/recall"} <= set(
            e["scores"])
        assert all(0.0 <= v <= 1.0 for v in e["scores"].values())
    saved = json.loads((out / "predictions" / "epoch-0002.json").read_text())
    assert saved["scores"]["test/n"] == 2 and saved["scores"]["train/n"] == 3
    assert {p["name"] for p in saved["predictions"]} == {s.name for s in corpus["samples"]}
    header = (out / "predictions" / "epoch-0002.csv").read_text().splitlines()[0]
    assert header == "name,description,openset"
    assert results["scores"]["last"] == evals[-1]["scores"]
    assert results["train_config"]["best_metric"] == "test/avg"
    assert {"features_s", "train_s", "eval_s", "export_s", "total_s"} <= set(results["timings"])
    for name in ("loss.png", "scores.png", "summary.json", "config.json"):
        assert (out / name).is_file()

    # the exported model is the best checkpoint, and loads with from_pretrained
    best = read_pointer(out, "best")
    assert results["exported_from"] == str(best)
    model = AffectGPT.from_pretrained(out / "model")
    for key, value in load_trainable(best).items():
        torch.testing.assert_close(model.trainable_state_dict()[key], value, rtol=0, atol=0)
    assert model.config.video.encoder == "face-cnn"


def test_train_cli_help_and_bad_settings(capsys):
    from affectgpt.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for option in ("--preset", "--stage", "--manifest", "--eval-manifest", "--init-from",
                   "--resume", "--set", "--train", "--features-dir", "--skip-bad-media",
                   "max_steps"):
        assert option in text
    assert main(["train", "--manifest", "m.jsonl", "--out", "x", "--train", "epoch=3"]) == 2
    assert "did you mean 'epochs'" in capsys.readouterr().err
    assert main(["train", "--manifest", "m.jsonl", "--out", "x", "--train", "lr=fast"]) == 2
    assert "lr must be a number" in capsys.readouterr().err


def _stage(corpus, out, **train):
    from affectgpt.features.sources import FeatureSettings
    from affectgpt.train import TrainConfig
    from affectgpt.train.pipeline import EvalSettings, train_stage

    resume = train.pop("resume", None)
    cfg = TrainConfig(out_dir=str(out), epochs=2, batch_size=2, lr=1e-3, progress=False,
                      **train)
    return train_stage("tiny", overrides=REAL_ENCODERS, train=cfg, manifest=corpus["train"],
                       eval_manifest=corpus["fine"], resume=resume,
                       features=FeatureSettings(progress=False),
                       evaluation=EvalSettings(max_new_tokens=4, batch_size=5))


def test_resumed_stage_matches_an_uninterrupted_one(corpus, tmp_path):
    from affectgpt.model import AffectGPT

    whole = _stage(corpus, tmp_path / "whole")
    first = _stage(corpus, tmp_path / "cut", max_steps=2)  # stops after epoch 1
    assert first.results["train"]["step"] == 2 and not first.results["train"]["finished"]
    again = _stage(corpus, tmp_path / "cut", resume="auto")
    assert again.results["train"]["resumed_from"].endswith("checkpoint-2")
    assert again.results["train"]["step"] == 4 and again.results["train"]["finished"]
    steps = [json.loads(line)["step"] for line in
             (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    evals = [json.loads(line) for line in
             (tmp_path / "cut" / "eval_log.jsonl").read_text().splitlines()]
    reference = [json.loads(line) for line in
                 (tmp_path / "whole" / "eval_log.jsonl").read_text().splitlines()]
    assert evals == reference
    a = AffectGPT.from_pretrained(whole.model_dir).trainable_state_dict()
    b = AffectGPT.from_pretrained(again.model_dir).trainable_state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_unreadable_training_clip_stops_or_is_skipped_explicitly(corpus, tmp_path):
    from dataclasses import replace

    from affectgpt.data.manifest import write_manifest
    from affectgpt.features.sources import FeatureSettings, SampleMediaError
    from affectgpt.model import AffectGPT, load_config
    from affectgpt.train import TrainConfig
    from affectgpt.train.pipeline import train_stage

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not really a video" * 40)
    samples = [s for s in corpus["samples"] if s.split == "train"]
    samples.append(replace(samples[1], name="broken", video=str(broken)))
    manifest = write_manifest(samples, tmp_path / "with-broken.jsonl")
    cfg = TrainConfig(out_dir=str(tmp_path / "run"), epochs=1, batch_size=2, progress=False)
    features = FeatureSettings(progress=False, root=str(corpus["root"] / "features"))
    with pytest.raises(SampleMediaError, match="broken.mp4"):
        train_stage("tiny", overrides=REAL_ENCODERS, train=cfg, manifest=manifest,
                    features=features)
    assert not (tmp_path / "run").exists()  # stopped before training

    # skipping is explicit and recorded; init from a previous run folder (its model/)
    previous = tmp_path / "previous"
    torch.manual_seed(1)
    AffectGPT.from_config(load_config("tiny", REAL_ENCODERS)).save_pretrained(
        previous / "model")
    features.skip_bad_media = True
    result = train_stage("tiny", overrides=REAL_ENCODERS,
                         train=cfg.replace(init_from=str(previous)), manifest=manifest,
                         features=features)
    assert list(result.results["samples"]["skipped_train"]) == ["broken"]
    assert result.results["samples"]["train"] == 3
    assert result.results["train"]["init_from"]["path"] == str(previous / "model")
    assert result.results["train"]["init_from"]["missing_trainable"] == []


def test_llm_label_extraction_during_evaluation(corpus, tmp_path, scripted_llm, capsys):
    from affectgpt.cli import main

    scripted_llm.script = [{"status": 200, "text": "['happy', 'worried']"}]
    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny", *_sets(), "--manifest", str(corpus["train"]),
                 "--eval-manifest", str(corpus["fine"]), "--out", str(out),
                 "--train", "epochs=1", "--train", "batch_size=3", "--train", "progress=false",
                 "--max-new-tokens", "4", "--extract", "llm",
                 "--llm-base-url", scripted_llm.base_url, "--llm-model", "scripted",
                 "--llm-cache", str(tmp_path / "llm.sqlite"), "--llm-max-retries", "0"]) == 0
    saved = json.loads((out / "predictions" / "epoch-0001.json").read_text())
    assert saved["extraction"] == "llm" and saved["extraction_failures"] == []
    described = [p for p in saved["predictions"] if p["description"].strip()]
    assert described and all(p["openset"] == ["happy", "worried"] for p in described)
    assert scripted_llm.count == len(described)
    gold = {s.name: set(s.labels) for s in corpus["samples"]}
    hits = [len(gold[p["name"]] & {"happy", "worried"}) for p in described]
    if any(hits):  # synonyms may score too; exact hits must
        assert saved["scores"]["whole/recall"] > 0


def test_withheld_modalities_are_never_seen(corpus, tmp_path, capsys):
    """--withhold video: the model's batches carry no video in training nor in evaluation,
    so the video branch gets no gradient while the audio branch learns. Withholding both
    without LoRA would train nothing and is refused."""
    from affectgpt.cli import main
    from affectgpt.model import AffectGPT
    from affectgpt.train.trainer import seed_everything

    out = tmp_path / "no-video"
    argv = ["train", "--preset", "tiny", *_sets(), "--stage", "2", "--manifest",
            str(corpus["fine"]), "--split", "train", "--eval-manifest", str(corpus["fine"]),
            "--withhold", "video", "--out", str(out),
            "--train", "epochs=1", "--train", "batch_size=3", "--train", "lr=1e-2",
            "--train", "weight_decay=0", "--train", "progress=false",
            "--max-new-tokens", "4", "--eval-batch-size", "5"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["withheld"] == ["video"]
    exported = AffectGPT.from_pretrained(out / "model")
    trained = exported.trainable_state_dict()
    seed_everything(results["train_config"]["seed"])  # as the pipeline, before building
    fresh = AffectGPT.from_config(exported.config)
    changed = {key for key, value in fresh.trainable_state_dict().items()
               if not torch.equal(trained[key], value)}
    # zero gradients (the DDP touch) and no weight decay: AdamW leaves the video branch alone
    assert changed and all(key.startswith("audio.") for key in changed), sorted(changed)[-3:]

    both = argv[:argv.index("--out")] + ["--withhold", "audio", "--out", str(tmp_path / "x")]
    assert main(both) == 2
    assert "nothing trainable sees the data" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--manifest", "m.jsonl", "--out", "x", "--withhold", "text"])
    capsys.readouterr()
