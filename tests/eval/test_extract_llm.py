"""LLM label extraction: prompt protocol, validation, corrective retries, failure records,
cached replays; against a scripted server and the real local SmolLM2 server."""

from __future__ import annotations

import pytest

from affectgpt.eval.extract import (
    EXTRACT_PROMPT_VERSION,
    extract_labels_llm,
    extraction_messages,
    validate_extraction,
)
from affectgpt.llm import ChatClient, ResponseCache

DESCRIPTIONS = {
    "happy_one": "He laughs loudly and says he is thrilled about winning the prize.",
    "sad_one": "She cries quietly; her voice trembles as she talks about her late mother.",
    "blank": "   ",
}


def test_prompt_follows_the_protocol():
    messages = extraction_messages("She  smiles.\nThen she laughs.")
    assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    text = messages[0]["content"]
    assert "emotional states of the main character" in text
    assert "clearly identifiable" in text
    assert "commas" in text and "list form" in text and "[]" in text
    assert messages[-1]["content"] == "Description: She smiles. Then she laughs."
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    assert answers[-1] == "[]"  # the few-shot shows the empty case
    assert [validate_extraction(a) for a in answers] == [
        ["happy", "excited"], ["angry", "disappointed"], []]  # the examples are valid replies
    assert EXTRACT_PROMPT_VERSION


@pytest.mark.parametrize("reply, labels", [
    ("['happy', 'excited']", ["happy", "excited"]),
    ("Output: [Happy, excited, happy]", ["happy", "excited"]),
    ("```\n['sad']\n```", ["sad"]),
    ("[]", []),
    ("Emotions: [\"don't believe\", 'angry']", ["don't believe", "angry"]),
])
def test_validate_accepts(reply, labels):
    assert validate_extraction(reply) == labels


@pytest.mark.parametrize("reply, reason", [
    ("", "empty"),
    ("happy, excited", "not a list"),
    ("None", "not a list"),
    ("[happy, excited", "not a flat list"),
    ("['he is very happy about the prize']", "not short emotion words"),
])
def test_validate_rejects(reply, reason):
    with pytest.raises(ValueError, match=reason):
        validate_extraction(reply)


def _client(server, tmp_path, **kw):
    return ChatClient(server.base_url, "scripted", api_key_env=None, backoff=0.01,
                      cache=ResponseCache(tmp_path / "cache.sqlite"), **kw)


def test_retry_failure_record_and_replay(scripted_llm, tmp_path):
    def answer(payload):
        messages = payload["messages"]
        if "thrilled" in messages[7]["content"]:
            # invalid first, corrected on the follow-up turn
            return {"text": "['happy', 'excited']" if len(messages) > 8 else "He is happy."}
        return {"text": "The main character is clearly very sad and grieving."}

    scripted_llm.script = [answer]
    client = _client(scripted_llm, tmp_path)
    labels, failures = extract_labels_llm(DESCRIPTIONS, client, max_attempts=2, progress=False)
    assert labels == {"happy_one": ["happy", "excited"], "blank": []}  # failed sample left out
    assert len(failures) == 1
    fail = failures[0]
    assert fail["name"] == "sad_one" and fail["description"] == DESCRIPTIONS["sad_one"]
    assert fail["attempts"] == 2 and "not a list" in fail["reason"]
    assert fail["last_reply"].startswith("The main character")
    assert client.calls == 4
    bodies = [r["json"] for r in scripted_llm.requests]
    assert all(b["temperature"] == 0.0 for b in bodies)
    fix = next(b for b in bodies
               if len(b["messages"]) == 10 and "thrilled" in b["messages"][7]["content"])
    assert fix["messages"][:8] == extraction_messages(DESCRIPTIONS["happy_one"])
    assert fix["messages"][8] == {"role": "assistant", "content": "He is happy."}
    assert fix["messages"][9]["role"] == "user" and "[]" in fix["messages"][9]["content"]

    rerun = _client(scripted_llm, tmp_path)
    assert extract_labels_llm(DESCRIPTIONS, rerun, max_attempts=2, progress=False) == (
        labels, failures)
    assert rerun.calls == 0


def test_rejects_non_string_description(tmp_path):
    client = ChatClient("http://127.0.0.1:9/v1", "none", api_key_env=None)
    with pytest.raises(TypeError):
        extract_labels_llm({"x": None}, client, progress=False)


@pytest.mark.server
def test_real_server_extraction(llm_server, llm_client):
    # short descriptions that name the emotion: SmolLM2-135M lists them validly (a long,
    # indirect one such as DESCRIPTIONS["happy_one"] makes it repeat words past max_tokens)
    descriptions = {"sad": "She is sad and cries.",
                    "angry": "He frowns and shouts angrily at his brother.",
                    "blank": "   "}
    labels, failures = extract_labels_llm(descriptions, llm_client, max_attempts=2,
                                          max_tokens=16, progress=False)
    assert labels["blank"] == []
    names = {"sad", "angry"}
    failed = {f["name"] for f in failures}
    assert failed <= names
    assert set(labels) == {"blank"} | (names - failed)
    assert names - failed, f"no description was answered validly: {failures}"
    for name in names - failed:
        assert labels[name], name  # an emotion is named in each of them
        assert all(isinstance(x, str) and x == x.lower() and x.strip() for x in labels[name])
    for f in failures:
        assert set(f) == {"name", "description", "reason", "last_reply", "attempts"}
        assert f["attempts"] == 2
    assert 2 <= llm_client.calls <= 4

    rerun = ChatClient(llm_server.base_url, llm_server.model, api_key_env=None,
                       cache=llm_client.cache)
    assert extract_labels_llm(descriptions, rerun, max_attempts=2, max_tokens=16,
                              progress=False) == (labels, failures)
    assert rerun.calls == 0
