"""ChatClient against a scripted misbehaving server: retries, timeouts, errors, cache."""

from __future__ import annotations

import socket
import time
from email.utils import formatdate

import pytest

from affectgpt.llm import ChatClient, ChatReply, LLMError, ResponseCache
from affectgpt.llm.client import clean_reply, parse_retry_after

MSG = [{"role": "user", "content": "hello"}]


def make_client(server, **kw) -> ChatClient:
    kw.setdefault("api_key_env", None)
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 5.0)
    return ChatClient(server.base_url, "scripted-model", **kw)


def test_success_and_request_body(scripted_llm):
    scripted_llm.script = [{"text": "hi there"}]
    client = make_client(scripted_llm)
    reply = client.chat(MSG, max_tokens=7, seed=3, top_p=0.5)
    assert reply == ChatReply("hi there", {"prompt_tokens": 1, "completion_tokens": 1,
                                           "total_tokens": 2}, False, "stop")
    sent = scripted_llm.requests[0]["json"]
    assert sent["model"] == "scripted-model"
    assert sent["messages"] == MSG
    assert (sent["temperature"], sent["max_tokens"], sent["seed"], sent["top_p"]) == (0.0, 7, 3, 0.5)
    assert client.calls == 1


def test_500_then_success_is_retried(scripted_llm):
    scripted_llm.script = [{"status": 500}, {"status": 502}, {"text": "fine"}]
    client = make_client(scripted_llm, max_retries=4)
    assert client.chat(MSG).text == "fine"
    assert client.calls == 3 == scripted_llm.count


def test_5xx_exhausts_retries(scripted_llm):
    scripted_llm.script = [{"status": 503, "body": "overloaded, try later"}]
    client = make_client(scripted_llm, max_retries=2)
    with pytest.raises(LLMError) as info:
        client.chat(MSG)
    assert info.value.status == 503
    assert "overloaded" in info.value.body
    assert info.value.attempts == 3 == client.calls == scripted_llm.count


def test_429_honours_retry_after(scripted_llm):
    scripted_llm.script = [{"status": 429, "headers": {"Retry-After": "1"}}, {"text": "ok"}]
    client = make_client(scripted_llm, backoff=0.01)
    sleeps: list[float] = []
    client.sleep = sleeps.append  # record instead of waiting
    assert client.chat(MSG).text == "ok"
    assert client.calls == 2
    assert len(sleeps) == 1 and 1.0 <= sleeps[0] < 1.1  # from the header, not the backoff


def test_429_real_wait(scripted_llm):
    scripted_llm.script = [{"status": 429, "headers": {"Retry-After": "0.3"}}, {"text": "ok"}]
    client = make_client(scripted_llm, backoff=0.001)
    start = time.monotonic()
    assert client.chat(MSG).text == "ok"
    assert time.monotonic() - start >= 0.3


def test_parse_retry_after():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    later = parse_retry_after(formatdate(time.time() + 30, usegmt=True))
    assert later is not None and 25 <= later <= 31
    assert parse_retry_after(formatdate(time.time() - 30, usegmt=True)) == 0.0


def test_backoff_is_exponential_with_jitter(scripted_llm):
    scripted_llm.script = [{"status": 500}] * 4 + [{"text": "ok"}]
    client = make_client(scripted_llm, backoff=1.0, max_retries=4)
    sleeps: list[float] = []
    client.sleep = sleeps.append
    client.chat(MSG)
    assert len(sleeps) == 4
    for i, s in enumerate(sleeps):
        assert 0.5 * 2**i <= s <= 2**i


def test_hang_times_out_then_fails(scripted_llm):
    scripted_llm.script = [{"delay": 5.0, "text": "too late"}]
    client = make_client(scripted_llm, timeout=0.3, max_retries=1)
    start = time.monotonic()
    with pytest.raises(LLMError) as info:
        client.chat(MSG)
    assert time.monotonic() - start < 3.0
    assert info.value.status is None
    assert "Timeout" in str(info.value)
    assert client.calls == 2 == info.value.attempts


def test_hang_then_success(scripted_llm):
    scripted_llm.script = [{"delay": 5.0, "text": "too late"}, {"text": "quick"}]
    client = make_client(scripted_llm, timeout=0.3, max_retries=2)
    assert client.chat(MSG).text == "quick"
    assert client.calls == 2


def test_400_fails_at_once(scripted_llm):
    scripted_llm.script = [{"status": 400, "body": {"error": {"message": "unknown model foo"}}}]
    client = make_client(scripted_llm, max_retries=4)
    with pytest.raises(LLMError) as info:
        client.chat(MSG)
    assert info.value.status == 400
    assert "unknown model foo" in str(info.value)
    assert "not retried" in str(info.value)
    assert client.calls == 1 == scripted_llm.count


def test_connection_refused_is_retried_then_fails():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    client = ChatClient(f"http://127.0.0.1:{port}/v1", "m", api_key_env=None, backoff=0.01,
                        max_retries=2)
    with pytest.raises(LLMError) as info:
        client.chat(MSG)
    assert info.value.status is None and client.calls == 3
    assert "ConnectError" in str(info.value)


def test_malformed_success_body(scripted_llm):
    scripted_llm.script = [{"status": 200, "body": "<html>proxy page</html>"}]
    client = make_client(scripted_llm)
    with pytest.raises(LLMError, match="proxy page"):
        client.chat(MSG)


def test_api_key_from_env(scripted_llm, monkeypatch):
    monkeypatch.setenv("AFFECTGPT_TEST_KEY", "sk-test-123")
    make_client(scripted_llm, api_key_env="AFFECTGPT_TEST_KEY").chat(MSG)
    assert scripted_llm.requests[-1]["headers"].get("Authorization") == "Bearer sk-test-123"
    monkeypatch.delenv("AFFECTGPT_TEST_KEY")
    make_client(scripted_llm, api_key_env="AFFECTGPT_TEST_KEY").chat(MSG)
    assert "Authorization" not in scripted_llm.requests[-1]["headers"]


def test_chat_many_keeps_order_and_isolates_failures(scripted_llm):
    def answer(payload):
        content = payload["messages"][0]["content"]
        if content == "bad":
            return {"status": 400, "body": "rejected"}
        return {"text": content.upper(), "delay": 0.05}

    scripted_llm.script = [answer]
    client = make_client(scripted_llm, concurrency=3)
    batch = [[{"role": "user", "content": c}] for c in ["a", "b", "bad", "c", "d"]]
    out = client.chat_many(batch, progress=False)
    assert [r.text for r in out if isinstance(r, ChatReply)] == ["A", "B", "C", "D"]
    assert isinstance(out[2], LLMError) and out[2].status == 400
    assert client.calls == 5


def test_cache_replays_and_skips_failures(scripted_llm, tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    scripted_llm.script = [{"status": 400}, {"text": "first"}, {"text": "second"}]
    client = make_client(scripted_llm, cache=cache)
    with pytest.raises(LLMError):
        client.chat(MSG)
    assert len(cache) == 0  # failures are not stored
    assert client.chat(MSG).text == "first"
    again = client.chat(MSG)
    assert again.text == "first" and again.cached and again.finish_reason == "stop"
    assert client.calls == 2 and client.cache_hits == 1
    # other decoding parameters or another prompt version are other requests
    assert client.chat(MSG, max_tokens=5).text == "second"
    assert client.chat(MSG, prompt_version="v2").text == "second"
    assert client.calls == 4
    # a new client on the same file replays without calling
    other = make_client(scripted_llm, cache=ResponseCache(tmp_path / "c.sqlite"))
    assert other.chat(MSG).text == "first" and other.calls == 0


@pytest.mark.parametrize("raw, expected", [
    ("Output: [['a'], ['b']]", "[['a'], ['b']]"),
    ("```python\n[['a']]\n```", "[['a']]"),
    ("```\n['x']\n```", "['x']"),
    ("Sure! ['x', 'y'] Hope this helps.", "['x', 'y']"),
    ("answer:\n[]", "[]"),
    ("no list here", "no list here"),
])
def test_clean_reply(raw, expected):
    assert clean_reply(raw) == expected
