"""An annotation run never writes the API key or URL credentials to its output folder, and
refuses to send the key in clear text to another host."""

from __future__ import annotations

import pytest
from annotate_helpers import recorded_overrides

from affectgpt.annotate import apply_overrides, default_config, run_annotation
from affectgpt.llm import InsecureAPIKeyError

SECRET = "sk-test-a81f30c2d94e"
URL_SECRET = "pw-in-url-77c1"


def _merge_only(base_url, recorded_clues, *more):
    return apply_overrides(default_config(), [
        *recorded_overrides(recorded_clues), "translate.enabled=false", "labels.enabled=false",
        "filter.enabled=false", f"merge.base_url={base_url}", "merge.model=scripted",
        "merge.api_key_env=AFFECTGPT_TEST_API_KEY", "merge.max_retries=0", *more])


def test_run_records_hold_no_secret(tmp_path, text_manifest, recorded_clues, scripted_llm,
                                    monkeypatch):
    monkeypatch.setenv("AFFECTGPT_TEST_API_KEY", SECRET)
    scripted_llm.script = [{"text": f"He sounds upset; the key {SECRET} was wrong."}]
    base_url = scripted_llm.base_url.replace("http://", f"http://user:{URL_SECRET}@")
    cfg = _merge_only(base_url, recorded_clues)
    out = tmp_path / "out"
    summary = run_annotation(text_manifest, out, cfg, limit=2, progress=False)
    assert summary.stages[-1].done == 2
    # credentials in the URL go as HTTP basic auth (and take the bearer key's place)
    assert scripted_llm.requests[0]["headers"]["Authorization"].startswith("Basic ")
    written = {path.name: path.read_text(encoding="utf-8", errors="replace")
               for path in out.rglob("*") if path.is_file()}
    assert "run.json" in written and "merge.jsonl" in written
    assert "[redacted]@127.0.0.1" in written["run.json"]
    for name, text in written.items():
        assert URL_SECRET not in text, name
        if name != "merge.jsonl":  # the model's reply is data, recorded as said
            assert SECRET not in text, name
    assert URL_SECRET not in cfg.to_yaml()


def test_key_is_not_sent_in_clear_text(tmp_path, text_manifest, recorded_clues, monkeypatch):
    monkeypatch.setenv("AFFECTGPT_TEST_API_KEY", SECRET)
    cfg = _merge_only("http://10.255.255.1:8000/v1", recorded_clues)
    with pytest.raises(InsecureAPIKeyError, match="allow-insecure-api-key") as info:
        run_annotation(text_manifest, tmp_path / "out", cfg, limit=1, progress=False)
    assert SECRET not in str(info.value)
    allowed = _merge_only("http://10.255.255.1:8000/v1", recorded_clues,
                          "merge.allow_insecure_api_key=true", "merge.timeout=0.5")
    summary = run_annotation(text_manifest, tmp_path / "out2", allowed, limit=1,
                             progress=False)
    assert summary.stages[-1].failed == 1  # sent (nothing answers there): a recorded failure
