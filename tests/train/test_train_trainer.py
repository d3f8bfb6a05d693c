"""The training loop: epochs, accumulation, evaluation, logs, plots, summary."""

from __future__ import annotations

import json
import math

import pytest
import torch
from train_toys import ToyDataset, collate, fast_config, make_model, read_jsonl

from affectgpt.train import Trainer, lr_at


def test_true_epochs_are_passes_over_the_data(tmp_path, toy_data):
    model = make_model()
    cfg = fast_config(tmp_path, epochs=3, batch_size=4, grad_accum=2)
    trainer = Trainer(model, toy_data, collate, cfg)
    # 23 samples, batches of 4 -> 6 batches a pass -> 3 steps of 2 micro-batches
    assert trainer.steps_per_epoch == 3 and trainer.total_steps == 9
    summary = trainer.fit()
    assert summary["finished"] and summary["step"] == 9
    assert summary["epoch_kind"] == "passes over the data"
    assert model.forward_calls == 18
    for epoch in range(3):
        assert sorted(model.seen[23 * epoch:23 * (epoch + 1)]) == list(range(23))
    assert model.seen[:23] != model.seen[23:46]  # reshuffled every pass
    log = read_jsonl(tmp_path / "train_log.jsonl")
    assert [r["step"] for r in log] == list(range(1, 10))
    assert [r["epoch"] for r in log] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert set(log[0]) >= {"step", "epoch", "loss", "lr", "seconds"}
    expected = [lr_at(s, lr=1e-2, min_lr=1e-3, total_steps=9, warmup_steps=2) for s in range(9)]
    assert [r["lr"] for r in log] == pytest.approx(expected)
    assert all(math.isfinite(r["loss"]) for r in log)


def test_last_step_of_a_pass_may_have_fewer_micro_batches(tmp_path, toy_data):
    model = make_model()
    cfg = fast_config(tmp_path, epochs=2, batch_size=4, grad_accum=4)
    trainer = Trainer(model, toy_data, collate, cfg)
    assert trainer.steps_per_epoch == 2  # 6 batches: 4 + 2
    assert [trainer.micro_batches(k) for k in range(2)] == [4, 2]
    trainer.fit()
    assert model.forward_calls == 12


def test_iters_per_epoch_runs_across_passes(tmp_path, toy_data):
    model = make_model()
    cfg = fast_config(tmp_path, epochs=2, iters_per_epoch=5, batch_size=4)
    trainer = Trainer(model, toy_data, collate, cfg)
    assert trainer.total_steps == 10
    summary = trainer.fit()
    assert summary["epoch_kind"] == "fixed iterations"
    assert model.forward_calls == 10
    # 10 batches = pass 0 (6 batches, 23 samples) + 4 batches (16 samples) of pass 1
    plan = trainer.sampler.indices(0) + trainer.sampler.indices(1)[:16]
    assert model.seen == plan
    assert trainer.sampler.state_dict()["data_epoch"] == 1
    assert trainer.sampler.state_dict()["position"] == 16
    assert [r["epoch"] for r in read_jsonl(tmp_path / "train_log.jsonl")] == [1] * 5 + [2] * 5


def test_eval_plots_summary_and_frozen_eval_mode(tmp_path, toy_data):
    model = make_model()
    calls = []

    def eval_fn(m, epoch):
        calls.append((epoch, m.training, m.block.training))
        torch.rand(100)  # evaluation draws random numbers: training must not notice
        return {"acc": 0.1 * epoch + (0.05 if epoch % 2 else 0.0), "note": "text is kept"}

    cfg = fast_config(tmp_path, epochs=5, eval_every=2, plots=True, best_metric="acc",
                      smooth_window=3)
    summary = Trainer(model, toy_data, collate, cfg, eval_fn=eval_fn).fit()
    # every 2nd epoch and always the last one, on the model in eval mode
    assert calls == [(2, False, False), (4, False, False), (5, False, False)]
    # the frozen encoder (with dropout) stayed in eval mode while the rest trained
    assert model.encoder_training and not any(model.encoder_training)
    assert model.training and model.block.training and not model.encoder.training
    evals = read_jsonl(tmp_path / "eval_log.jsonl")
    assert [e["epoch"] for e in evals] == [2, 4, 5]
    assert evals[0]["scores"]["note"] == "text is kept"
    for name in ("loss.png", "scores.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
        import matplotlib.image

        assert matplotlib.image.imread(tmp_path / name).ndim == 3
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk == summary
    acc = summary["scores"]["acc"]
    assert acc["best"] == pytest.approx(0.55) and acc["best_epoch"] == 5
    assert acc["best_smoothed"] == pytest.approx((0.4 + 0.55) / 2)
    assert summary["best"]["metric"] == "acc" and summary["best"]["epoch"] == 5
    assert (tmp_path / "best").read_text().strip() == f"checkpoint-{summary['best']['step']}"
    assert summary["trainable_parameters"] == sum(
        p.numel() for p in model.parameters() if p.requires_grad)
    assert summary["frozen_parameters"] == sum(p.numel() for p in model.encoder.parameters())


def test_eval_does_not_change_training(tmp_path, toy_data):
    """With or without evaluation (which consumes RNG) the loss sequence is the same."""
    runs = []
    for i, eval_fn in enumerate((None, lambda m, e: {"x": float(torch.rand(()))})):
        Trainer(make_model(), toy_data, collate, fast_config(tmp_path / str(i), epochs=3),
                eval_fn=eval_fn).fit()
        runs.append([r["loss"] for r in read_jsonl(tmp_path / str(i) / "train_log.jsonl")])
    assert runs[0] == runs[1]


def test_bf16_on_cpu_falls_back_to_fp32(tmp_path, toy_data, caplog):
    with caplog.at_level("WARNING", logger="affectgpt.train"):
        trainer = Trainer(make_model(), toy_data, collate,
                          fast_config(tmp_path, precision="bf16", max_steps=1))
    assert trainer.autocast_dtype is None and "CUDA only" in caplog.text
    assert trainer.fit()["precision"] == "fp32"


def test_non_finite_loss_stops_with_the_last_checkpoint(tmp_path, toy_data):
    model = make_model()
    cfg = fast_config(tmp_path, epochs=3)
    trainer = Trainer(model, toy_data, collate, cfg)
    original = model.forward

    def poisoned(batch):
        out = original(batch)
        if model.forward_calls > 8:
            out.loss = out.loss * float("nan")
        return out

    model.forward = poisoned
    with pytest.raises(FloatingPointError, match="checkpoint-6"):
        trainer.fit()


def test_loss_may_come_as_dict_or_tensor(tmp_path, toy_data):
    for kind in ("dict", "tensor"):
        model = make_model()
        original = model.forward

        def forward(batch, original=original, kind=kind):
            out = original(batch)
            return {"loss": out.loss} if kind == "dict" else out.loss

        model.forward = forward
        summary = Trainer(model, toy_data, collate,
                          fast_config(tmp_path / kind, max_steps=2)).fit()
        assert summary["step"] == 2 and not summary["finished"]


def test_max_steps_saves_a_resumable_checkpoint(tmp_path):
    data = ToyDataset(9)
    summary = Trainer(make_model(), data, collate, fast_config(tmp_path, max_steps=2)).fit()
    assert summary["last_checkpoint"].endswith("checkpoint-2")
    assert (tmp_path / "latest").read_text().strip() == "checkpoint-2"


def test_eval_failure_propagates(tmp_path, toy_data):
    def eval_fn(model, epoch):
        raise ValueError("bad scorer")

    trainer = Trainer(make_model(), toy_data, collate, fast_config(tmp_path), eval_fn=eval_fn)
    with pytest.raises(ValueError, match="bad scorer"):
        trainer.fit()
    assert trainer.model.training  # back in training mode
