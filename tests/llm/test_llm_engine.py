"""The batching engine: the thin-batch linear layer, and continuous batching with per-request
parameters, cancellation and a bounded queue on the packaged SmolLM2."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError, ThreadPoolExecutor

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from affectgpt.llm.engine import (
    THIN_BATCH_ROWS,
    BatchedGenerator,
    GenerationAborted,
    PromptTooLongError,
    QueueFullError,
    ThinBatchLinear,
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


def test_missing_model_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        BatchedGenerator(tmp_path)


LONG = [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}]


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


@pytest.mark.server
def test_requests_with_other_parameters_share_a_batch(smollm2_dir):
    generator = BatchedGenerator(smollm2_dir, max_batch=4, gather_seconds=1.0)
    prompts = [[{"role": "user", "content": f"Name emotion number {i}."}] for i in range(4)]
    params = [{"max_tokens": 3}, {"max_tokens": 5}, {"max_tokens": 3, "temperature": 0.7,
                                                     "seed": 1}, {"max_tokens": 5}]
    barrier = threading.Barrier(4)

    def ask(i):
        barrier.wait()  # all four arrive within the gathering window
        return generator.chat(prompts[i], params[i])

    try:
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(ask, range(4)))
    finally:
        generator.close()
    assert generator.batch_sizes == [4]  # one prefill; each row keeps its own parameters
    for reply, p in zip(replies, params):
        assert 0 < reply.usage["completion_tokens"] <= p["max_tokens"]
        assert reply.finish_reason in {"stop", "length"}
    assert generator.completion_tokens == sum(r.usage["completion_tokens"] for r in replies)
    assert generator.stats()["completed"] == 4
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


@pytest.mark.server
def test_a_joining_request_is_not_stuck_behind_a_long_one(smollm2_dir):
    """A short request that arrives while a long one decodes joins the running batch,
    finishes first, and gets the greedy reply it gets alone."""
    short = [{"role": "user", "content": "The person frowns and shouts. How do they feel?"}]
    generator = BatchedGenerator(smollm2_dir, max_batch=4, gather_seconds=0.0)
    try:
        alone = generator.chat(short, {"max_tokens": 8})
        steps = generator.stats()["decode_steps"]
        long = generator.submit(LONG, {"max_tokens": 200})
        _wait_for(lambda: generator.stats()["decode_steps"] >= steps + 5)
        joined = generator.chat(short, {"max_tokens": 8})
        assert not long.done()  # the short one did not wait for the long one
        assert joined.text == alone.text and joined.usage == alone.usage
        assert generator.batch_sizes == [1, 1, 1]  # the join was its own prefill
    finally:
        long.cancel()
        generator.close()


@pytest.mark.server
def test_cancelled_requests_stop_decoding(smollm2_dir):
    generator = BatchedGenerator(smollm2_dir, max_batch=2, gather_seconds=0.0)
    try:
        running = [generator.submit(LONG, {"max_tokens": 500}) for _ in range(2)]
        waiting = generator.submit(LONG, {"max_tokens": 500})  # no slot: queued
        _wait_for(lambda: generator.stats()["decode_steps"] >= 3)
        for future in (*running, waiting):
            assert future.cancel()
            with pytest.raises(CancelledError):
                future.result()
        _wait_for(lambda: generator.stats()["active"] == 0, timeout=5)
        stats = generator.stats()
        assert stats["cancelled"] == 3 and stats["completed"] == 0
        assert stats["generated_tokens"] < 2 * 100  # far from 2 x 500: decoding stopped
        started = time.monotonic()
        reply = generator.chat([{"role": "user", "content": "Say hi."}], {"max_tokens": 4})
        assert reply.usage["completion_tokens"] > 0
        assert time.monotonic() - started < 30  # not behind 1000 abandoned tokens
        assert generator.stats()["generated_tokens"] < stats["generated_tokens"] + 10
    finally:
        generator.close()


@pytest.mark.server
def test_bounded_queue_and_abort(smollm2_dir):
    generator = BatchedGenerator(smollm2_dir, max_batch=1, max_queue=1, gather_seconds=0.0)
    running = generator.submit(LONG, {"max_tokens": 500})
    _wait_for(lambda: generator.stats()["active"] == 1)
    queued = generator.submit(LONG, {"max_tokens": 500})
    with pytest.raises(QueueFullError) as info:
        generator.submit(LONG, {"max_tokens": 4})
    assert 1 <= info.value.retry_after <= 60
    assert generator.stats()["refused"] == 1
    started = time.monotonic()
    generator.close(cancel=True, timeout=10)
    assert time.monotonic() - started < 5
    for future in (running, queued):
        with pytest.raises(GenerationAborted):
            future.result(timeout=1)


@pytest.mark.server
def test_request_limits(smollm2_dir):
    generator = BatchedGenerator(smollm2_dir, max_batch=1)
    try:
        with pytest.raises(PromptTooLongError, match="context"):
            generator.submit(LONG, {"max_tokens": generator.context_length})
        with pytest.raises(ValueError, match="at least 1"):
            generator.submit(LONG, {"max_tokens": -1})
    finally:
        generator.close()


@pytest.mark.server
def test_seeded_sampling_does_not_depend_on_the_batch(smollm2_dir):
    ask = [{"role": "user", "content": "Write a word about joy."}]
    params = {"max_tokens": 6, "temperature": 1.0, "top_p": 0.9, "seed": 7}
    generator = BatchedGenerator(smollm2_dir, max_batch=4, gather_seconds=0.5)
    try:
        alone = generator.chat(ask, params)
        futures = [generator.submit(LONG, {"max_tokens": 6}), generator.submit(ask, params)]
        assert futures[1].result().text == alone.text
        futures[0].result()
    finally:
        generator.close()
