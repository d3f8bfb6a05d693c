"""End to end against a real OpenAI-compatible server (`transformers serve` with the
packaged SmolLM2-135M-Instruct on loopback), on real synthetic clips.

SmolLM2 takes text only, so the clue stages run on the packaged CPU clue models (and the
capability check refuses to send it audio or video); merge, translate and labels run on the
server. A 135M model writes poor text: the pipeline must record what it cannot use as
failures (or validated fallbacks) and never crash.
"""

from __future__ import annotations

import csv

import pytest
from annotate_helpers import server_overrides

from affectgpt.annotate import (
    AnnotateConfigError,
    apply_overrides,
    default_config,
    export_dataset,
    run_annotation,
)
from affectgpt.annotate.prompts import EMER_COARSE_V1
from affectgpt.annotate.store import read_rows
from affectgpt.data.manifest import read_manifest

pytestmark = pytest.mark.slow


def _rows(out, stage, kind=""):
    path = out / (f"{stage}.{kind}.jsonl" if kind else f"{stage}.jsonl")
    return {r["name"]: r for r in read_rows(path)[0]} if path.exists() else {}


def test_all_stages_end_to_end_on_real_clips_and_a_real_server(tmp_path, clips, llm_server):
    cfg = apply_overrides(default_config(), [
        *server_overrides(llm_server.base_url, llm_server.model, max_tokens=12),
        "audio-clue.backend=packaged", "video-clue.backend=packaged",
        "translate.max_attempts=1", "labels.max_tokens=24", "labels.max_attempts=1",
        "labels.fallback=lexicon", "concurrency=2"])
    out = tmp_path / "out"
    summary = run_annotation(clips, out, cfg, limit=2, progress=False)  # 2 clips: CPU time
    names = [s.name for s in read_manifest(clips)][:2]
    by_stage = {s.stage: s for s in summary.stages}
    assert list(by_stage) == ["audio-clue", "video-clue", "merge", "translate", "labels", "filter"]
    for stage in by_stage.values():  # every sample is accounted for, once
        assert stage.done + stage.failed + stage.blocked == len(names), stage
        rows, failures = _rows(out, stage.stage), _rows(out, stage.stage, "failures")
        assert not set(rows) & set(failures)
        assert len(rows) == stage.done and len(failures) == stage.failed
    assert by_stage["merge"].done == len(names)  # the merge prompt is easy to satisfy
    assert by_stage["merge"].prompt_tokens > 0 and by_stage["merge"].completion_tokens > 0

    audio, video = _rows(out, "audio-clue"), _rows(out, "video-clue")
    for name, row in _rows(out, "merge").items():
        prov = row["provenance"]
        assert prov["backend"] == {"kind": "openai", "model": llm_server.model,
                                   "base_url": llm_server.base_url}
        assert prov["prompt"] == {"version": "emer-coarse-v1", "sha256": EMER_COARSE_V1.sha256()}
        assert prov["params"] == {"temperature": 0.0, "max_tokens": 12}
        sent = prov["messages"][-1]["content"]
        assert audio[name]["output"]["clue"] in sent and video[name]["output"]["clue"] in sent
        assert 0 < prov["usage"]["completion_tokens"] <= 12 * prov["attempts"]
        assert row["output"]["description"].strip()
    for row in _rows(out, "translate").values():
        assert row["output"]["language"] == "zh"
    for row in _rows(out, "labels").values():
        assert isinstance(row["output"]["labels"], list)
        assert row["output"]["fallback"] == ("llm_failure" in row["provenance"])
    for failure in _rows(out, "translate", "failures").values():
        assert failure["reason"] and failure["attempts"] >= 1

    result = export_dataset(out, manifest_out=tmp_path / "coarse.jsonl",
                            csv_out=tmp_path / "coarse.csv", allow_missing=("translate",))
    filters = _rows(out, "filter")
    expected = [n for n in names if n in _rows(out, "labels") and filters[n]["output"]["keep"]]
    assert result.skipped.get("filtered out", 0) == sum(not filters[n]["output"]["keep"]
                                                        for n in filters)
    assert result.exported == len(expected)
    exported = read_manifest(tmp_path / "coarse.jsonl")
    assert [s.name for s in exported] == expected
    translations = _rows(out, "translate")
    for sample in exported:
        assert sample.description_en == _rows(out, "merge")[sample.name]["output"]["description"]
        assert sample.description_zh == translations.get(sample.name, {}).get(
            "output", {}).get("text", "")
    with open(tmp_path / "coarse.csv", encoding="utf-8", newline="") as fh:
        table = list(csv.reader(fh))
    assert table[0] == ["name", "english", "chinese", "openset"]
    assert [r[0] for r in table[1:]] == expected


def test_the_server_is_refused_audio_it_cannot_take(tmp_path, clips, llm_server):
    cfg = apply_overrides(default_config(), [
        *server_overrides(llm_server.base_url, llm_server.model), "audio-clue.accepts=text"])
    with pytest.raises(AnnotateConfigError, match="'audio-clue'.*accepts \\['text'\\].*sends audio"):
        run_annotation(clips, tmp_path / "out", cfg, progress=False)
    assert not any((tmp_path / "out").glob("*.jsonl"))


def test_transformers_back_end_runs_a_text_stage_locally(tmp_path, text_manifest, recorded_clues,
                                                          smollm2_dir):
    from annotate_helpers import recorded_overrides

    cfg = apply_overrides(default_config(), [
        *recorded_overrides(recorded_clues), "merge.backend=transformers",
        f"merge.model={smollm2_dir}", "merge.max_tokens=8", "translate.enabled=false",
        "labels.enabled=false", "filter.enabled=false"])
    summary = run_annotation(text_manifest, tmp_path / "out", cfg, limit=1, progress=False)
    assert summary.stages[-1].done == 1
    (row,) = read_rows(tmp_path / "out" / "merge.jsonl")[0]
    assert row["provenance"]["backend"]["kind"] == "transformers"
    assert 0 < row["provenance"]["usage"]["completion_tokens"] <= 8
    assert row["output"]["description"].strip()


def test_transformers_back_end_batches_concurrent_requests(smollm2_dir):
    """Concurrent requests run as one left-padded batch and get the replies they would get
    one at a time (greedy)."""
    from concurrent.futures import ThreadPoolExecutor

    from affectgpt.annotate.backends import TransformersBackend
    from affectgpt.annotate.config import StageConfig

    cfg = StageConfig(backend="transformers", model=str(smollm2_dir), max_tokens=8)
    prompts = [[{"role": "user", "content": text}] for text in (
        "Name one emotion.", "The person frowns and shouts. How do they feel?",
        "Say hello.", "A long day at work ends with good news about a promotion. Describe "
        "the mood in a few words.")]
    single = TransformersBackend(cfg, max_batch=1)
    batched = TransformersBackend(cfg, max_batch=4)
    batched.gather_seconds = 0.5
    try:
        alone = [single.chat(p, prompt_version="v") for p in prompts]
        with ThreadPoolExecutor(4) as pool:
            together = list(pool.map(lambda p: batched.chat(p, prompt_version="v"), prompts))
    finally:
        single.close()
        batched.close()
    assert single.batch_sizes == [1, 1, 1, 1] and max(batched.batch_sizes) > 1
    assert [g.text for g in together] == [g.text for g in alone]
    assert [g.usage for g in together] == [g.usage for g in alone]
    assert all(0 < g.usage["completion_tokens"] <= 8 for g in together)


def test_text_stages_at_concurrency_4_are_batched_by_serve_llm(tmp_path, text_manifest,
                                                               recorded_clues, smollm2_dir):
    """`affectgpt serve-llm` on loopback: the run's 4 concurrent merge requests are
    generated together, and the rows are the same as one at a time (greedy)."""
    import httpx
    from annotate_helpers import recorded_overrides

    from affectgpt.llm import LocalModelServer

    with LocalModelServer(smollm2_dir, engine="affectgpt",
                          extra_args=["--max-batch", "4", "--gather-ms", "300"]) as server:
        outputs = {}
        for concurrency in (1, 4):
            cfg = apply_overrides(default_config(), [
                *recorded_overrides(recorded_clues),
                *server_overrides(server.base_url, server.model, max_tokens=8),
                "translate.enabled=false", "labels.enabled=false", "filter.enabled=false",
                f"concurrency={concurrency}"])
            out = tmp_path / f"c{concurrency}"
            summary = run_annotation(text_manifest, out, cfg, limit=4, progress=False)
            assert summary.stages[-1].done == 4
            outputs[concurrency] = {n: r["output"]["description"]
                                    for n, r in _rows(out, "merge").items()}
        stats = httpx.get(f"{server.base_url}/stats", trust_env=False).json()
    assert outputs[4] == outputs[1]
    assert stats["requests"] == 8 and stats["failed"] == 0
    assert int(max(stats["batch_sizes"], key=int)) > 1  # concurrency 4 shared batches


def test_local_server_flag_serves_the_text_stages(tmp_path, text_manifest, recorded_clues,
                                                  smollm2_dir):
    """`annotate run --local-server` starts `affectgpt serve-llm` with the packaged SmolLM2
    for the openai text stages and stops it afterwards."""
    import subprocess
    import sys

    from annotate_helpers import recorded_overrides

    cfg = apply_overrides(default_config(), [
        *recorded_overrides(recorded_clues), "merge.max_tokens=6", "concurrency=2",
        "translate.enabled=false", "labels.enabled=false", "filter.enabled=false"])
    config = tmp_path / "cfg.yaml"
    config.write_text(cfg.to_yaml(), encoding="utf-8")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "affectgpt.cli", "annotate", "run", "--manifest",
                           str(text_manifest), "--out", str(out), "--config", str(config),
                           "--local-server", "--limit", "2", "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = _rows(out, "merge")
    assert len(rows) == 2
    for row in rows.values():
        backend = row["provenance"]["backend"]
        assert backend["model"] == str(smollm2_dir)
        assert backend["base_url"].startswith("http://127.0.0.1:")
        assert row["output"]["description"].strip()
