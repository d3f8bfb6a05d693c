"""The batching engine: the thin-batch linear layer and request batching by decoding
parameters, on the packaged SmolLM2."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from affectgpt.llm.engine import (
    THIN_BATCH_ROWS,
    BatchedGenerator,
    ThinBatchLinear,
    decoding_key,
    use_thin_batch_linears,
)


@pytest.mark.parametrize("rows", [1, 4, THIN_BATCH_ROWS, THIN_BATCH_ROWS + 1, 64])
@pytest.mark.parametrize("bias", [True, False])
def test_thin_batch_linear_matches_linear(rows, bias):
    torch.manual_seed(rows)
    plain = nn.Linear(48, 80, bias=bias)
    x = torch.randn(rows, 1, 48)  # (batch, one decoding position, features)
    expected = F.linear(x, plain.weight, plain.bias)
    plain.__class__ = ThinBatchLinear
    got = plain(x)
    assert got.shape == expected.shape == (rows, 1, 80)
    assert got.is_contiguous()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_use_thin_batch_linears_swaps_plain_cpu_linears_only():
    class Custom(nn.Linear):
        pass

    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), Custom(4, 4), nn.Linear(4, 2))
    weight = model[0].weight
    assert use_thin_batch_linears(model) == 2
    assert type(model[0]) is ThinBatchLinear and type(model[3]) is ThinBatchLinear
    assert type(model[2]) is Custom  # a subclass keeps its own forward
    assert model[0].weight is weight  # shared, not copied


def test_decoding_key_defaults():
    assert decoding_key({}) == decoding_key({"temperature": 0, "max_tokens": 256})
    assert decoding_key({"max_tokens": 8}) != decoding_key({"max_tokens": 9})


def test_missing_model_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        BatchedGenerator(tmp_path)


@pytest.mark.server
def test_requests_batch_by_decoding_parameters(smollm2_dir):
    generator = BatchedGenerator(smollm2_dir, max_batch=4, gather_seconds=1.0)
    prompts = [[{"role": "user", "content": f"Name emotion number {i}."}] for i in range(4)]
    params = [{"max_tokens": 3}, {"max_tokens": 5}, {"max_tokens": 3}, {"max_tokens": 5}]
    barrier = threading.Barrier(4)

    def ask(i):
        barrier.wait()  # all four arrive within the gathering window
        return generator.chat(prompts[i], params[i])

    try:
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(ask, range(4)))
    finally:
        generator.close()
    assert sorted(generator.batch_sizes) == [2, 2]  # one batch per max_tokens
    for reply, p in zip(replies, params):
        assert 0 < reply.usage["completion_tokens"] <= p["max_tokens"]
        assert reply.finish_reason in {"stop", "length"}
    assert generator.completion_tokens == sum(r.usage["completion_tokens"] for r in replies)
    with pytest.raises(RuntimeError, match="closed"):
        generator.submit(prompts[0], params[0])


@pytest.mark.server
def test_close_finishes_queued_requests(smollm2_dir):
    generator = BatchedGenerator(smollm2_dir, max_batch=2, gather_seconds=0.0)
    futures = [generator.submit([{"role": "user", "content": f"Say {w}."}], {"max_tokens": 2})
               for w in ("yes", "no", "maybe")]
    generator.close()
    assert all(f.done() and f.result().usage["completion_tokens"] > 0 for f in futures)
    assert sum(generator.batch_sizes) == 3
