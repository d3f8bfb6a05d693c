"""Two CPU processes under torchrun (gloo): identical weights on both ranks, exact resume."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_toys import read_jsonl

SCRIPT = Path(__file__).with_name("train_ddp_script.py")


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    out = tmp_path_factory.mktemp("ddp")
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo",
               TORCHELASTIC_ERROR_FILE=str(out / "error.json"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--standalone", str(SCRIPT), str(out)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"torchrun timed out:\n{e.stdout}\n{e.stderr}")
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return out


def test_both_ranks_end_with_identical_trained_weights(ddp_run):
    initial = load_file(str(ddp_run / "initial.safetensors"))
    rank0 = load_file(str(ddp_run / "a" / "rank0.safetensors"))
    rank1 = load_file(str(ddp_run / "a" / "rank1.safetensors"))
    assert rank0.keys() == rank1.keys() == initial.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    changed = [n for n in rank0 if not torch.equal(rank0[n], initial[n])]
    assert "head.weight" in changed and "audio_proj.weight" in changed
    assert len(changed) == len(rank0)


def test_only_rank0_writes_and_rng_is_kept_per_rank(ddp_run):
    run = ddp_run / "a"
    log = read_jsonl(run / "train_log.jsonl")
    # 23 samples -> 12 per rank -> 6 batches of 2 -> 3 steps of 2 micro-batches per epoch
    assert [r["step"] for r in log] == list(range(1, 7))
    assert [e["epoch"] for e in read_jsonl(run / "eval_log.jsonl")] == [1, 2]
    rng = torch.load(run / "checkpoint-6" / "rng.pt", weights_only=True)
    assert rng["world_size"] == 2 and len(rng["states"]) == 2
    assert not torch.equal(rng["states"][0]["torch"], rng["states"][1]["torch"])
    assert not list(run.glob(".tmp-*"))


def test_interrupted_ddp_run_resumes_exactly(ddp_run):
    a, b = ddp_run / "a", ddp_run / "b"
    assert [(r["step"], r["loss"], r["lr"]) for r in read_jsonl(b / "train_log.jsonl")] == \
        [(r["step"], r["loss"], r["lr"]) for r in read_jsonl(a / "train_log.jsonl")]
    for rank in (0, 1):
        wa = load_file(str(a / f"rank{rank}.safetensors"))
        wb = load_file(str(b / f"rank{rank}.safetensors"))
        assert all(torch.equal(wa[k], wb[k]) for k in wa)
