"""An interrupted and resumed run gives bit for bit the run that was never interrupted."""

from __future__ import annotations

import pytest
import torch
from train_toys import ToyDataset, collate, fast_config, make_model, read_jsonl

from affectgpt.train import Trainer


def _eval(model, epoch):
    # evaluation that uses the RNG and the model (dropout is off in eval mode)
    x = torch.randn(3, 6, 8)
    y = torch.zeros(3, dtype=torch.long)
    out = model({"index": torch.arange(3), "x": x, "y": y, "has_audio": torch.zeros(3).bool()})
    return {"loss": float(out.loss.detach())}


def _run(out_dir, cfg_kw, *, crash_after=None, resume=None, seed=0):
    model = make_model(seed=seed)
    model.crash_after = crash_after
    trainer = Trainer(model, ToyDataset(23), collate, fast_config(out_dir, **cfg_kw),
                      eval_fn=_eval)
    if crash_after is not None:
        with pytest.raises(KeyboardInterrupt):
            trainer.fit(resume=resume)
        return None
    trainer.fit(resume=resume)
    return model


def _losses(out_dir):
    return [(r["step"], r["epoch"], r["loss"], r["lr"]) for r in
            read_jsonl(out_dir / "train_log.jsonl")]


@pytest.mark.parametrize("mode", [
    pytest.param(dict(num_workers=0), id="epochs-workers0"),
    pytest.param(dict(num_workers=2), id="epochs-workers2"),
    pytest.param(dict(num_workers=0, iters_per_epoch=5), id="iters-workers0"),
    pytest.param(dict(num_workers=2, iters_per_epoch=5), id="iters-workers2"),
])
def test_interrupted_run_matches_uninterrupted(tmp_path, mode):
    # 23 samples in batches of 3 (a short last batch), 2 micro-batches a step, checkpoints
    # in the middle of epochs, clipping and an evaluation every epoch
    cfg_kw = dict(epochs=3, batch_size=3, grad_accum=2, save_every_steps=3,
                  max_grad_norm=0.5, **mode)
    straight = _run(tmp_path / "a", cfg_kw)
    # crash in the middle of step 8's accumulation (after checkpoint-6) ...
    _run(tmp_path / "b", cfg_kw, crash_after=15)
    assert (tmp_path / "b" / "latest").read_text().strip() == "checkpoint-6"
    # ... and resume with a model whose trainable weights start elsewhere (another seed):
    # everything comes from disk (the frozen encoder is the same "pretrained" one)
    resumed = _run(tmp_path / "b", cfg_kw, resume="auto", seed=123)

    assert _losses(tmp_path / "b") == _losses(tmp_path / "a")  # exact float equality
    assert read_jsonl(tmp_path / "b" / "eval_log.jsonl") == \
        read_jsonl(tmp_path / "a" / "eval_log.jsonl")
    for name, value in straight.trainable_state_dict().items():
        assert torch.equal(value, resumed.trainable_state_dict()[name]), name


def test_resume_from_an_earlier_checkpoint_replays_the_same_run(tmp_path):
    cfg_kw = dict(epochs=2, batch_size=4, save_every_steps=2, iters_per_epoch=4)
    _run(tmp_path, cfg_kw)
    before = _losses(tmp_path)
    model = _run(tmp_path, cfg_kw, resume=tmp_path / "checkpoint-2", seed=7)
    assert _losses(tmp_path) == before  # logs truncated to step 2, then rewritten identically
    assert model is not None and len(before) == 8
