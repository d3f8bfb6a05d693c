"""LLM grouping: the paper's prompt, reply validation, corrective retries, failure records,
cached replays; against a scripted server and the real local SmolLM2 server."""

from __future__ import annotations

import pytest

from affectgpt.eval.grouping import synonym_map
from affectgpt.eval.llm_grouping import (
    PROMPT_VERSION,
    grouping_messages,
    llm_groupings,
    sample_labels,
    validate_grouping,
)
from affectgpt.llm import ChatClient, ResponseCache

PAPER_PROMPT = (
    "Please assume the role of an expert in the field of emotions. We provide a set of "
    "emotions. Please group the emotions, with each group containing emotions with the same "
    "meaning. Directly output the results. The output format should be a list containing "
    "multiple lists. Input: ['Agree', 'agreement', 'Relaxed', 'acceptance', 'pleasant', "
    "'relaxed', 'Accept', 'positive', 'Happy'] Output: [['Agree', 'agreement', 'Accept', "
    "'acceptance'], ['Relaxed', 'relaxed'],['pleasant', 'positive', 'Happy']] Input: {labels} "
    "Output:"
)

GOLD = {"s1": ["happy", "joyful", "sad"], "s2": ["angry"], "s3": ["calm"], "s4": []}
PRED = {"s1": ["excited", "happy"], "s2": ["furious", "Angry"], "s3": [], "s4": []}


def test_prompt_is_the_papers_verbatim():
    messages = grouping_messages(["anger", "happy"])
    assert messages == [{"role": "user",
                         "content": PAPER_PROMPT.format(labels="['anger', 'happy']")}]
    assert PROMPT_VERSION


def test_turns_style_carries_the_same_instruction_and_example():
    system, example, answer, query = grouping_messages(["anger", "happy"], "turns")
    instruction, _, rest = PAPER_PROMPT.partition(" Input: ")
    assert system == {"role": "system", "content": instruction}
    assert example == {"role": "user", "content": "Input: " + rest.partition(" Output: ")[0]}
    assert answer["role"] == "assistant"
    assert validate_grouping(answer["content"], ["agree", "agreement", "accept", "acceptance",
                                                 "relaxed", "pleasant", "positive", "happy"]) == [
        ["agree", "agreement", "accept", "acceptance"], ["relaxed"], ["pleasant", "positive", "happy"]]
    assert query == {"role": "user", "content": "Input: ['anger', 'happy']"}
    with pytest.raises(ValueError, match="prompt style"):
        grouping_messages(["a", "b"], "chat")


def test_sample_labels_sorted_union():
    assert sample_labels(GOLD["s1"], PRED["s1"]) == ["excited", "happy", "joyful", "sad"]
    assert sample_labels(["Angry ", "angry"], ["furious"]) == ["angry", "furious"]


@pytest.mark.parametrize("reply", [
    "[['happy', 'joyful'], ['sad']]",
    "Output: [['Happy', 'JOYFUL'], ['sad']]",
    "```python\n[['happy', 'joyful'],\n ['sad']]\n```",
    '[["happy", "joyful"], ["sad"]]',
])
def test_validate_accepts(reply):
    assert validate_grouping(reply, ["happy", "joyful", "sad"]) == [["happy", "joyful"], ["sad"]]


def test_validate_allows_missing_labels_and_empty():
    assert validate_grouping("[['happy', 'joyful']]", ["happy", "joyful", "sad"]) == [
        ["happy", "joyful"]]
    assert validate_grouping("[]", ["happy", "sad"]) == []


@pytest.mark.parametrize("reply, reason", [
    ("['happy', 'joyful']", "list of lists"),
    ("happy and joyful mean the same", "list of lists"),
    ("", "empty"),
    ("[['happy', 'glad']]", "not given: ['glad']"),
    ("[['happy', 'joyful'", "list of lists"),
    ("[[['happy']]]", "list of lists"),
])
def test_validate_rejects(reply, reason):
    with pytest.raises(ValueError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        validate_grouping(reply, ["happy", "joyful", "sad"])


def _client(server, tmp_path, **kw):
    return ChatClient(server.base_url, "scripted", api_key_env=None, backoff=0.01,
                      cache=ResponseCache(tmp_path / "cache.sqlite"), **kw)


def test_corrective_retry_then_success(scripted_llm, tmp_path):
    scripted_llm.script = [{"text": "Sure, here are the groups: happy and joyful."},
                           {"text": "[['happy', 'joyful', 'excited'], ['sad']]"}]
    client = _client(scripted_llm, tmp_path, concurrency=1)
    groups, failures = llm_groupings(GOLD, PRED, client, names=["s1"], progress=False)
    assert failures == []
    assert groups == {"s1": [["happy", "joyful", "excited"], ["sad"]]}
    first, second = (r["json"] for r in scripted_llm.requests)
    assert first["temperature"] == 0.0
    assert first["messages"] == grouping_messages(["excited", "happy", "joyful", "sad"])
    assert second["messages"][:1] == first["messages"]
    assert second["messages"][1] == {"role": "assistant",
                                     "content": "Sure, here are the groups: happy and joyful."}
    fix = second["messages"][2]
    assert fix["role"] == "user" and "list of lists" in fix["content"]
    assert "['excited', 'happy', 'joyful', 'sad']" in fix["content"]


def test_garbage_replies_are_recorded_and_replayed(scripted_llm, tmp_path):
    def answer(payload):
        content = payload["messages"][0]["content"]
        if "'angry'" in content:  # s2: always garbage
            return {"text": "I think they are all emotions!"}
        return {"text": "[['excited', 'happy'], ['joyful'], ['sad']]"}

    scripted_llm.script = [answer]
    client = _client(scripted_llm, tmp_path)
    groups, failures = llm_groupings(GOLD, PRED, client, max_attempts=3, progress=False)
    assert list(groups) == ["s1", "s2", "s3", "s4"]
    assert groups["s1"] == [["excited", "happy"], ["joyful"], ["sad"]]
    assert groups["s2"] == []  # failed: no grouping, labels map to themselves
    assert groups["s3"] == [] and groups["s4"] == []  # 1 or 0 labels: no call
    assert len(failures) == 1
    fail = failures[0]
    assert fail["name"] == "s2" and fail["labels"] == ["angry", "furious"]
    assert fail["attempts"] == 3 and "after 3 attempt(s)" in fail["reason"]
    assert fail["last_reply"] == "I think they are all emotions!"
    assert client.calls == 1 + 3
    assert synonym_map(groups["s1"])["happy"] == "excited"

    rerun = _client(scripted_llm, tmp_path)  # same cache file
    assert llm_groupings(GOLD, PRED, rerun, max_attempts=3, progress=False) == (groups, failures)
    assert rerun.calls == 0


def test_unknown_label_is_corrected(scripted_llm, tmp_path):
    scripted_llm.script = [{"text": "[['angry', 'mad', 'furious']]"},
                           {"text": "[['angry', 'furious']]"}]
    client = _client(scripted_llm, tmp_path)
    groups, failures = llm_groupings(GOLD, PRED, client, names=["s2"], progress=False)
    assert (groups, failures) == ({"s2": [["angry", "furious"]]}, [])
    assert "not given: ['mad']" in scripted_llm.requests[1]["json"]["messages"][2]["content"]


def test_request_failure_is_recorded(scripted_llm, tmp_path):
    scripted_llm.script = [{"status": 400, "body": "context too long"}]
    client = _client(scripted_llm, tmp_path)
    groups, failures = llm_groupings(GOLD, PRED, client, progress=False)
    assert groups["s1"] == [] and {f["name"] for f in failures} == {"s1", "s2"}
    assert all("context too long" in f["reason"] for f in failures)
    assert client.calls == 2  # a 400 is not retried


def test_no_call_for_small_samples(tmp_path):
    client = ChatClient("http://127.0.0.1:9/v1", "none", api_key_env=None)
    groups, failures = llm_groupings(GOLD, PRED, client, names=["s3", "s4"], progress=False)
    assert groups == {"s3": [], "s4": []} and failures == [] and client.calls == 0


def test_unknown_sample_name(tmp_path):
    client = ChatClient("http://127.0.0.1:9/v1", "none", api_key_env=None)
    with pytest.raises(KeyError, match="neither gold nor predicted"):
        llm_groupings(GOLD, PRED, client, names=["nope"], progress=False)


@pytest.mark.server
def test_real_server_groupings(llm_server, llm_client, tmp_path):
    """SmolLM2-135M answers the paper's single-turn prompt with prose (recorded as failures),
    and its chat-turn form with a list of lists: at least one sample must come back grouped."""
    gold = {"a": ["happy", "joyful"], "b": ["angry", "annoyed"], "c": ["calm"]}
    pred = {"a": ["happy"], "b": ["furious"], "c": []}
    groups, failures = llm_groupings(gold, pred, llm_client, max_attempts=2, max_tokens=24,
                                     progress=False, prompt_style="turns")
    assert list(groups) == ["a", "b", "c"]
    assert groups["c"] == []
    failed = {f["name"] for f in failures}
    answered = [n for n in ("a", "b") if n not in failed]
    assert answered, f"no sample was grouped validly: {failures}"
    for name in answered:
        sent = sample_labels(gold[name], pred[name])
        assert groups[name] and all(label in sent for group in groups[name] for label in group)
    for name in failed:
        assert groups[name] == []
    for f in failures:
        assert set(f) == {"name", "labels", "reason", "last_reply", "attempts"}
        assert f["attempts"] == 2 and f["reason"]
    calls = llm_client.calls
    assert 2 <= calls <= 4

    rerun = ChatClient(llm_server.base_url, llm_server.model, api_key_env=None,
                       cache=llm_client.cache)
    assert llm_groupings(gold, pred, rerun, max_attempts=2, max_tokens=24, progress=False,
                         prompt_style="turns") == (groups, failures)
    assert rerun.calls == 0
