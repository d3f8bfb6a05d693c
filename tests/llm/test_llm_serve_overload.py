"""`affectgpt serve-llm` under overload, on loopback with the packaged SmolLM2: limits answered
with documented errors, abandoned requests cancelled (the annotate livelock), prompt SIGTERM,
and a load of 32 concurrent, partly misbehaving clients."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from affectgpt.llm import ChatClient, LLMError, LocalModelServer
from affectgpt.llm.loadtest import run_load

pytestmark = pytest.mark.server

LONG = [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}]


def _stats(server) -> dict:
    return httpx.get(f"{server.base_url}/stats", trust_env=False, timeout=10).json()


def _wait_for(predicate, timeout=30.0, step=0.05):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(step)


@pytest.fixture(scope="module")
def busy_server(smollm2_dir):
    """One server for the livelock and load tests (they compare stats before and after)."""
    with LocalModelServer(smollm2_dir, engine="affectgpt", extra_args=[
            "--max-batch", "8", "--max-queue", "8", "--gather-ms", "100",
            "--max-body-bytes", "65536", "--max-tokens-limit", "256"]) as server:
        yield server


def _delta(after: dict, before: dict, key: str) -> int:
    return after[key] - before[key]


def test_limits_and_sigterm(smollm2_dir):
    """Body size, max_tokens and queue limits answer documented errors; SIGTERM while
    requests decode and wait answers them 503 and ends the server within seconds."""
    with LocalModelServer(smollm2_dir, engine="affectgpt", extra_args=[
            "--max-batch", "1", "--max-queue", "1", "--gather-ms", "0",
            "--max-body-bytes", "4096", "--max-tokens-limit", "600"]) as server:
        url = f"{server.base_url}/chat/completions"
        post = lambda **kw: httpx.post(url, trust_env=False, timeout=30, **kw)  # noqa: E731
        big = post(content=b'{"messages": []}' + b" " * 5000,
                   headers={"content-type": "application/json"})
        assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
        greedy = post(json={"messages": LONG, "max_tokens": 601})
        assert greedy.status_code == 400
        assert greedy.json()["error"]["code"] == "max_tokens_too_large"
        assert "600" in greedy.json()["error"]["message"]

        # one request decodes, one waits: the third is refused with a time to come back
        with ThreadPoolExecutor(2) as pool:
            running = pool.submit(post, json={"messages": LONG, "max_tokens": 500})
            _wait_for(lambda: _stats(server)["active"] == 1)
            waiting = pool.submit(post, json={"messages": LONG, "max_tokens": 500})
            _wait_for(lambda: _stats(server)["queued"] == 1)
            full = post(json={"messages": LONG, "max_tokens": 4})
            assert full.status_code == 429 and full.json()["error"]["code"] == "queue_full"
            assert 1 <= int(full.headers["Retry-After"]) <= 60
            stats = _stats(server)
            assert stats["statuses"]["429"] == 1 and stats["refused"] == 1

            # SIGTERM while generating: both long requests end with 503, the server exits
            process, started = server.process, time.monotonic()
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)
            assert time.monotonic() - started < 4
            assert {running.result().status_code, waiting.result().status_code} == {503}
    # a stopped server's clients go back to fixed timeouts
    assert ChatClient(server.base_url, server.model).timeout_for is None


def test_abandoned_requests_are_cancelled_not_livelocked(busy_server):
    """The annotate livelock, scaled down: 4 concurrent long requests whose client timeout
    is far shorter than their generation. Each fails cleanly after its retries, the server
    stops decoding for every abandoned attempt and serves the next request at once; the
    same requests with the server-speed timeout all complete."""
    server = busy_server
    before = _stats(server)
    fixed = ChatClient(server.base_url, server.model, api_key_env=None, timeout=1.0,
                       max_retries=1, backoff=0.05, concurrency=4, adaptive_timeout=False)
    started = time.monotonic()
    results = fixed.chat_many([LONG] * 4, max_tokens=250)
    assert all(isinstance(r, LLMError) and "timeout 1.0 s" in str(r) for r in results), results
    assert time.monotonic() - started < 30
    assert fixed.calls == 8
    _wait_for(lambda: _stats(server)["active"] == 0, timeout=5)
    stats = _stats(server)
    assert _delta(stats, before, "cancelled") == 8
    assert _delta(stats, before, "disconnected") == 8
    assert _delta(stats, before, "completed") == 0
    # 8 attempts of 250 tokens would be 2000 tokens: decoding stopped with each client
    assert _delta(stats, before, "generated_tokens") < 500
    quick = time.monotonic()
    reply = fixed.chat([{"role": "user", "content": "Say hi."}], max_tokens=3)
    assert reply.text and time.monotonic() - quick < 15
    fixed.close()

    # a client of a server this process started times requests by the server's speed
    adaptive = ChatClient(server.base_url, server.model, api_key_env=None, timeout=1.0,
                          max_retries=0, concurrency=4)
    assert adaptive.timeout_for is not None and adaptive.timeout_for(40) > 1.0
    replies = adaptive.chat_many([LONG] * 4, max_tokens=40)
    adaptive.close()
    assert all(not isinstance(r, Exception) and r.usage["completion_tokens"] == 40
               for r in replies), replies


def test_only_servers_started_here_get_speed_timeouts(busy_server, scripted_llm):
    assert ChatClient(scripted_llm.base_url, "m", api_key_env=None).timeout_for is None
    assert ChatClient(busy_server.base_url, busy_server.model).timeout_for is not None
    assert ChatClient(busy_server.base_url, busy_server.model,
                      adaptive_timeout=False).timeout_for is None


def test_load_of_32_clients_with_misbehaving_ones(busy_server):
    """32 concurrent clients, 48 requests (slow, disconnecting, oversized and over-limit
    ones among them), a 120 s limit: every request gets a result or a documented error,
    the server stays up and its resident memory stays under 2 GiB."""
    limits = {"max_body_bytes": 65536, "max_tokens_limit": 256}
    server = busy_server
    before = _stats(server)
    result = run_load(server.base_url, server.model, clients=32, requests=48,
                      max_tokens=6, time_limit=120, server_pid=server.process.pid,
                      disconnect_max_tokens=200, **limits)
    assert result.undocumented == [], result.undocumented
    summary = result.summary()
    assert summary["by_kind"]["oversized"] == {"413": 3}
    assert summary["by_kind"]["too_many_tokens"] == {"400": 3}
    assert summary["replies"] >= 24  # most well-behaved ones got through
    assert result.wall_seconds < 120
    assert result.peak_rss_bytes is not None and result.peak_rss_bytes < 2 << 30
    _wait_for(lambda: _stats(server)["active"] == 0, timeout=10)
    stats = _stats(server)
    assert _delta(stats, before, "errored") == 0 and stats["queued"] == 0
    assert _delta(stats, before, "completed") == summary["replies"]
    # every disconnecting client that got a slot had its generation stopped
    assert _delta(stats, before, "generated_tokens") < \
        _delta(stats, before, "completion_tokens") + 3 * 200
    assert httpx.get(f"{server.base_url.removesuffix('/v1')}/health",
                     trust_env=False).status_code == 200
