"""The API key goes only over https or to loopback, and never shows in messages, reprs or
stored records; credentials in a URL are redacted."""

from __future__ import annotations

import pytest

from affectgpt.llm import ChatClient, InsecureAPIKeyError, LLMError, redact_url
from affectgpt.llm.endpoint import ChatEndpoint

SECRET = "sk-test-5f2d9c81b7a4e6"
KEY_ENV = "AFFECTGPT_TEST_API_KEY"
MSG = [{"role": "user", "content": "hello"}]


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    return SECRET


@pytest.mark.parametrize("url", ["http://10.1.2.3:8000/v1", "http://gpu-box.lan/v1",
                                 "http://example.com/v1", "http://127.0.0.1.example.com/v1"])
def test_key_is_refused_over_plain_http_to_another_host(api_key, url):
    with pytest.raises(InsecureAPIKeyError) as info:
        ChatClient(url, "m", api_key_env=KEY_ENV)
    message = str(info.value)
    assert "--allow-insecure-api-key" in message and f"${KEY_ENV}" in message
    assert SECRET not in message
    assert isinstance(info.value, LLMError)  # the CLI prints it as one line
    # said explicitly, it is sent
    client = ChatClient(url, "m", api_key_env=KEY_ENV, allow_insecure_key=True)
    assert client._http.headers["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in repr(client)


@pytest.mark.parametrize("url", ["https://api.openai.com/v1", "http://127.0.0.1:8000/v1",
                                 "http://127.0.0.7:8000/v1", "http://localhost:8000/v1",
                                 "http://[::1]:8000/v1"])
def test_key_goes_to_https_and_loopback(api_key, url):
    client = ChatClient(url, "m", api_key_env=KEY_ENV)
    assert client._http.headers["Authorization"] == f"Bearer {SECRET}"


def test_no_key_no_refusal(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    client = ChatClient("http://10.1.2.3:8000/v1", "m", api_key_env=KEY_ENV)
    assert "Authorization" not in client._http.headers
    assert "Authorization" not in ChatClient("http://10.1.2.3/v1", "m",
                                             api_key_env=None)._http.headers


def test_a_server_echoing_the_key_is_redacted(api_key, scripted_llm):
    echo = {"error": {"message": f"Incorrect API key provided: {SECRET}"}}
    scripted_llm.script = [{"status": 401, "body": echo}]
    client = ChatClient(scripted_llm.base_url, "m", api_key_env=KEY_ENV, backoff=0.01)
    with pytest.raises(LLMError) as info:
        client.chat(MSG)
    assert scripted_llm.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in str(info.value) and SECRET not in info.value.body
    assert "Incorrect API key provided: [redacted]" in str(info.value)
    # retried statuses and garbage replies too
    scripted_llm.script = [{"status": 503, "body": echo}]
    with pytest.raises(LLMError) as info:
        ChatClient(scripted_llm.base_url, "m", api_key_env=KEY_ENV, max_retries=1,
                   backoff=0.01).chat(MSG)
    assert SECRET not in str(info.value) and "[redacted]" in str(info.value)
    scripted_llm.script = [{"status": 200, "body": {"echo": SECRET}}]
    with pytest.raises(LLMError, match="unexpected reply") as info:
        client.chat(MSG)
    assert SECRET not in str(info.value) and SECRET not in info.value.body


@pytest.mark.parametrize("url, shown", [
    ("https://user:sk-abc@proxy.example/v1", "https://[redacted]@proxy.example/v1"),
    ("https://sk-abc@proxy.example:8443/v1", "https://[redacted]@proxy.example:8443/v1"),
    ("https://x.azure.com/openai?api-key=sk-abc&api-version=2024",
     "https://x.azure.com/openai?api-key=[redacted]&api-version=[redacted]"),
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_url_credentials_stay_out_of_errors_and_records(tmp_path):
    url = "http://user:sk-in-url@127.0.0.1:9/v1"  # port 9: nothing listens
    client = ChatClient(url, "m", api_key_env=None, max_retries=0, timeout=2)
    with pytest.raises(LLMError) as info:
        client.chat(MSG)
    assert "sk-in-url" not in str(info.value) and "sk-in-url" not in info.value.url
    assert "sk-in-url" not in repr(client)
    config = ChatEndpoint(base_url=url, cache=str(tmp_path / "cache.sqlite"))
    assert config.to_dict()["base_url"] == "http://[redacted]@127.0.0.1:9/v1"


def test_llm_config_passes_the_option(api_key, tmp_path):
    cache = str(tmp_path / "cache.sqlite")
    with pytest.raises(InsecureAPIKeyError):
        ChatEndpoint(base_url="http://10.1.2.3/v1", api_key_env=KEY_ENV, cache=cache).client()
    client = ChatEndpoint(base_url="http://10.1.2.3/v1", api_key_env=KEY_ENV, cache=cache,
                       allow_insecure_api_key=True).client()
    assert client._http.headers["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in repr(ChatEndpoint(api_key_env=KEY_ENV))
