"""CUDA only: bf16 autocast over fp32 trainable weights, exact resume with CUDA RNG."""

from __future__ import annotations

import pytest
import torch
from train_toys import ToyDataset, collate, fast_config, make_model, read_jsonl

from affectgpt.train import Trainer

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_bf16_autocast_on_cuda_keeps_fp32_weights(tmp_path, toy_data):
    model = make_model()
    dtypes = []
    original = model.forward

    def forward(batch):
        out = original(batch)
        dtypes.append((out.logits.dtype, out.loss.dtype, batch["x"].device.type))
        return out

    model.forward = forward
    trainer = Trainer(model, toy_data, collate, fast_config(tmp_path, precision="bf16"))
    assert trainer.device.type == "cuda" and trainer.autocast_dtype == torch.bfloat16
    summary = trainer.fit()
    assert summary["precision"] == "bf16" and summary["device"].startswith("cuda")
    assert set(dtypes) == {(torch.bfloat16, torch.float32, "cuda")}
    assert all(p.dtype == torch.float32 and p.is_cuda
               for p in model.parameters() if p.requires_grad)
    state = torch.load(tmp_path / "checkpoint-12" / "optimizer.pt", weights_only=True)
    assert all(s["exp_avg"].dtype == torch.float32 for s in state["state"].values())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_resume_is_exact(tmp_path, precision):
    kw = dict(epochs=2, batch_size=3, grad_accum=2, save_every_steps=3, num_workers=2,
              precision=precision)

    def run(out, crash_after=None, seed=0):
        model = make_model(seed=seed)
        model.crash_after = crash_after
        trainer = Trainer(model, ToyDataset(23), collate, fast_config(out, **kw))
        if crash_after is None:
            trainer.fit(resume="auto")
        else:
            with pytest.raises(KeyboardInterrupt):
                trainer.fit()
        return model

    straight = run(tmp_path / "a")
    run(tmp_path / "b", crash_after=9)
    resumed = run(tmp_path / "b", seed=5)
    la = [(r["step"], r["loss"]) for r in read_jsonl(tmp_path / "a" / "train_log.jsonl")]
    lb = [(r["step"], r["loss"]) for r in read_jsonl(tmp_path / "b" / "train_log.jsonl")]
    assert la == lb
    for k, v in straight.trainable_state_dict().items():
        assert torch.equal(v, resumed.trainable_state_dict()[k]), k


def test_paper_preset_at_real_size_trains_in_bf16(tmp_path):
    """The `paper` preset with random weights of the real sizes (Vicuna-7B-shaped LLM)
    trains a few steps at batch 3 in bf16 (the benchmark script, shortened)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_train_gpu.py"
    out = tmp_path / "result.json"
    subprocess.run([sys.executable, str(script), "--steps", "4", "--warmup", "1",
                    "--out", str(out)], check=True, timeout=1200)
    result = json.loads(out.read_text())
    assert result["precision"] == "bf16" and result["batch_size"] == 3
    assert result["frozen_parameters"] > 6e9 and 3e7 < result["trainable_parameters"] < 6e7
    assert all(loss == loss and loss > 0 for loss in result["losses"])  # finite
    assert result["peak_memory_gib"] < torch.cuda.get_device_properties(0).total_memory / 2**30
