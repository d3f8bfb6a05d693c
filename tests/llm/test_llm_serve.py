"""`affectgpt serve-llm`: request validation, and the real server on loopback batching
concurrent requests from the project's own client."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from affectgpt.cli import build_parser
from affectgpt.llm import ChatClient, LocalModelServer
from affectgpt.llm.serve import RequestError, parse_chat_request

NAMES = {"/models/smol", "smol"}


def _body(**extra):
    return {"model": "smol", "messages": [{"role": "user", "content": "Hi"}], **extra}


def test_parse_chat_request_reads_text_and_decoding():
    messages, params = parse_chat_request(_body(
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": [{"type": "text", "text": "a"},
                                               {"type": "text", "text": "b"}]}],
        temperature=0, top_p=0.9, max_completion_tokens=12, max_tokens=99, seed=3), NAMES)
    assert messages == [{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "a\nb"}]
    assert params == {"temperature": 0.0, "top_p": 0.9, "max_tokens": 12, "seed": 3}
    assert parse_chat_request({"messages": [{"role": "user", "content": "x"}]}, NAMES)[1] == {}


@pytest.mark.parametrize("body, status, fragment", [
    (_body(model="other"), 404, "not served here"),
    (_body(stream=True), 400, "streaming"),
    (_body(n=2), 400, "n=1"),
    (_body(messages=[]), 400, "non-empty"),
    (_body(messages=[{"role": "tool", "content": "x"}]), 400, "role"),
    (_body(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:,"}}]}]), 400, "text-only"),
    (_body(messages=[{"role": "user", "content": 5}]), 400, "string or a list"),
    (_body(max_tokens=0), 400, "at least 1"),
    (_body(temperature="hot"), 400, "bad decoding parameter"),
    ([1, 2], 400, "JSON object"),
])
def test_parse_chat_request_refuses(body, status, fragment):
    with pytest.raises(RequestError, match=fragment) as info:
        parse_chat_request(body, NAMES)
    assert info.value.status == status


def test_serve_llm_help_lists_options(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve-llm", "--help"])
    out = capsys.readouterr().out
    for option in ("--max-batch", "--gather-ms", "--device", "--dtype", "--port", "--name"):
        assert option in out


@pytest.mark.server
def test_server_batches_concurrent_requests(smollm2_dir):
    with LocalModelServer(smollm2_dir, engine="affectgpt",
                          extra_args=["--max-batch", "4", "--gather-ms", "1000"]) as server:
        base = server.base_url
        models = httpx.get(f"{base}/models", trust_env=False).json()
        assert [m["id"] for m in models["data"]] == [server.model]

        client = ChatClient(base, server.model, api_key_env=None, timeout=120, max_retries=0,
                            concurrency=4)
        prompts = [[{"role": "user", "content": f"Name emotion number {i}."}] for i in range(4)]
        barrier = threading.Barrier(4)

        def ask(messages):
            barrier.wait()
            return client.chat(messages, max_tokens=6, temperature=0)

        try:
            with ThreadPoolExecutor(4) as pool:
                replies = list(pool.map(ask, prompts))
        finally:
            client.close()
        assert all(r.text.strip() and 0 < r.usage["completion_tokens"] <= 6 for r in replies)
        stats = httpx.get(f"{base}/stats", trust_env=False).json()
        assert stats["requests"] == 4 and stats["failed"] == 0
        assert stats["batch_sizes"] == {"4": 1}  # one generate call for all four
        assert stats["completion_tokens"] == sum(r.usage["completion_tokens"] for r in replies)

        wrong = httpx.post(f"{base}/chat/completions", trust_env=False,
                           json={"model": "gpt-4o", "messages": prompts[0]})
        assert wrong.status_code == 404
        assert wrong.json()["error"]["code"] == "model_not_found"
        garbage = httpx.post(f"{base}/chat/completions", content=b"{not json",
                             headers={"content-type": "application/json"}, trust_env=False)
        assert garbage.status_code == 400 and "not JSON" in garbage.json()["error"]["message"]
        assert httpx.get(f"{base}/stats", trust_env=False).json()["failed"] == 2
