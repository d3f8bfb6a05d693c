"""Per-sample failures, retry-failed, garbage replies and bounded concurrency, against the
scripted misbehaving OpenAI-compatible server."""

from __future__ import annotations

import threading
import time

from annotate_helpers import SUBTITLES, recorded_overrides, samples_of

from affectgpt.annotate import apply_overrides, default_config, run_annotation, run_status
from affectgpt.annotate.runner import open_failures
from affectgpt.annotate.store import read_rows
from affectgpt.cli import main
from affectgpt.eval.lexicon import LexiconExtractor


def _merge_only(server, recorded_clues, *more):
    return apply_overrides(default_config(), [
        *recorded_overrides(recorded_clues), "translate.enabled=false", "labels.enabled=false",
        "filter.enabled=false", f"merge.base_url={server.base_url}", "merge.model=scripted",
        "merge.api_key_env=", "merge.max_retries=1", "merge.backoff=0.01", "merge.max_attempts=2",
        *more])


def _user_text(payload) -> str:
    return " ".join(m["content"] for m in payload["messages"] if m["role"] == "user")


def test_failures_are_recorded_left_alone_and_retried_alone(tmp_path, text_manifest,
                                                            recorded_clues, scripted_llm):
    def flaky(payload):
        text = _user_text(payload)
        if SUBTITLES[3] in text:
            return {"status": 500}
        if SUBTITLES[4] in text:
            return {"text": "   "}  # an empty reply: invalid, corrected once, still empty
        return {"text": "He sounds upset and seems angry about what happened."}

    scripted_llm.script = [flaky]
    cfg = _merge_only(scripted_llm, recorded_clues)
    out = tmp_path / "out"
    summary = run_annotation(text_manifest, out, cfg, progress=False)
    merge = summary.stages[-1]
    assert (merge.stage, merge.done, merge.failed) == ("merge", 4, 2)
    failures = {r["name"]: r for r in read_rows(out / "merge.failures.jsonl")[0]}
    assert set(failures) == {"clip_003", "clip_004"}
    assert "HTTP 500" in failures["clip_003"]["reason"]
    assert "empty" in failures["clip_004"]["reason"] and failures["clip_004"]["attempts"] == 2
    assert failures["clip_004"]["backend"]["model"] == "scripted"
    assert run_status(out)["merge"] == {"rows": 4, "open_failures": 2}

    # a plain rerun leaves recorded failures alone: no request at all
    sent = scripted_llm.count
    again = run_annotation(text_manifest, out, cfg, progress=False).stages[-1]
    assert (again.done, again.failed, again.failed_before, again.done_before) == (0, 0, 2, 4)
    assert scripted_llm.count == sent

    # retry-failed runs only the two failures
    scripted_llm.script = [{"text": "She sounds sad and wants to be left alone."}]
    config = tmp_path / "cfg.yaml"
    config.write_text(cfg.to_yaml(), encoding="utf-8")
    code = main(["annotate", "retry-failed", "--manifest", str(text_manifest), "--out", str(out),
                 "--config", str(config), "--no-progress"])
    assert code == 0
    assert scripted_llm.count == sent + 2
    rows = read_rows(out / "merge.jsonl")[0]
    assert sorted(r["name"] for r in rows) == samples_of(text_manifest)  # no duplicates
    assert not open_failures(out, "merge")
    assert len(read_rows(out / "merge.failures.jsonl")[0]) == 2  # the history stays


def test_a_client_error_is_not_retried(tmp_path, text_manifest, recorded_clues, scripted_llm):
    scripted_llm.script = [{"status": 400}]
    cfg = _merge_only(scripted_llm, recorded_clues, "merge.max_retries=3")
    summary = run_annotation(text_manifest, tmp_path / "out", cfg, limit=1, progress=False)
    assert summary.stages[-1].failed == 1
    assert scripted_llm.count == 1
    (row,) = read_rows(tmp_path / "out" / "merge.failures.jsonl")[0]
    assert "HTTP 400" in row["reason"] and "not retried" in row["reason"]


def test_garbage_labels_fail_or_fall_back_on_the_lexicon_when_asked(tmp_path, text_manifest,
                                                                     recorded_clues, scripted_llm):
    def reply(payload):
        if "emotional states" in payload["messages"][0]["content"]:  # the extraction prompt
            return {"text": "Well, it is hard to say what he feels."}
        return {"text": "He raises his voice and frowns; he seems angry and frustrated."}

    scripted_llm.script = [reply]
    base = _merge_only(scripted_llm, recorded_clues, "labels.enabled=true",
                       f"labels.base_url={scripted_llm.base_url}", "labels.model=scripted",
                       "labels.api_key_env=", "labels.max_attempts=2")
    strict = run_annotation(text_manifest, tmp_path / "strict", base, limit=2, progress=False)
    assert [(s.stage, s.done, s.failed) for s in strict.stages][-1] == ("labels", 0, 2)
    (first, _) = read_rows(tmp_path / "strict" / "labels.failures.jsonl")[0]
    assert "not a list in brackets" in first["reason"] or "not a flat list" in first["reason"]

    lenient = apply_overrides(base, ["labels.fallback=lexicon"])
    summary = run_annotation(text_manifest, tmp_path / "lenient", lenient, limit=2, progress=False)
    assert summary.stages[-1].done == 2
    merged = {r["name"]: r["output"]["description"]
              for r in read_rows(tmp_path / "lenient" / "merge.jsonl")[0]}
    lexicon = LexiconExtractor()
    for row in read_rows(tmp_path / "lenient" / "labels.jsonl")[0]:
        assert row["output"]["fallback"] is True
        assert row["output"]["labels"] == lexicon.extract(merged[row["name"]])
        assert row["output"]["labels"]
        assert "invalid reply" in row["provenance"]["llm_failure"]
        # both attempts' tokens are counted (the scripted server reports 1 + 1 per reply)
        assert row["provenance"]["usage"] == {"prompt_tokens": 2, "completion_tokens": 2,
                                              "total_tokens": 4}


def test_concurrency_is_bounded_and_pays_off(tmp_path, text_manifest, recorded_clues, scripted_llm):
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def slow(payload):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.4)
        with lock:
            state["now"] -= 1
        return {"text": "He seems calm and relaxed while talking."}

    scripted_llm.script = [slow]
    cfg = _merge_only(scripted_llm, recorded_clues, "merge.concurrency=3")
    started = time.perf_counter()
    summary = run_annotation(text_manifest, tmp_path / "out", cfg, progress=False)
    seconds = time.perf_counter() - started
    assert summary.stages[-1].done == len(SUBTITLES)
    assert state["peak"] == 3
    assert seconds < len(SUBTITLES) * 0.4 * 0.75  # serial would take 2.4 s
