"""kill -9 in the middle of a run, resume, and compare with an uninterrupted run.

The CLI runs in a subprocess against the real local server (greedy decoding, no reply
cache, so the texts are reproducible); it is SIGKILLed once a few merge rows are on disk,
a torn half line is added as a kill mid-write would leave it, and the run is started again.
The resumed rows must be the uninterrupted run's rows: same samples, same texts, no
duplicates.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from annotate_helpers import recorded_overrides, samples_of, server_overrides

from affectgpt.annotate import apply_overrides, default_config, run_annotation
from affectgpt.annotate.store import read_rows

pytestmark = pytest.mark.slow


LIMIT = 4  # samples: each request takes seconds on 2 shared CPU cores


def _cli(manifest, out, config):
    return [sys.executable, "-m", "affectgpt.cli", "annotate", "run", "--manifest", str(manifest),
            "--out", str(out), "--config", str(config), "--no-progress", "--limit", str(LIMIT)]


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, text_manifest, recorded_clues,
                                                         llm_server):
    cfg = apply_overrides(default_config(), [
        *recorded_overrides(recorded_clues),
        *server_overrides(llm_server.base_url, llm_server.model, max_tokens=8),
        "translate.enabled=false", "labels.enabled=false", "filter.enabled=false",
        "concurrency=1"])
    assert cfg.cache is None and cfg.stages["merge"].temperature == 0.0
    config = tmp_path / "cfg.yaml"
    config.write_text(cfg.to_yaml(), encoding="utf-8")
    names = samples_of(text_manifest)[:LIMIT]

    reference = tmp_path / "reference"
    run_annotation(text_manifest, reference, cfg, limit=LIMIT, progress=False)
    expected = {r["name"]: r["output"] for r in read_rows(reference / "merge.jsonl")[0]}
    failures = reference / "merge.failures.jsonl"
    assert sorted(expected) == names, failures.read_text() if failures.exists() else ""

    out = tmp_path / "killed"
    merge = out / "merge.jsonl"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_cli(text_manifest, out, config), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if merge.exists() and len(read_rows(merge)[0]) >= 1:
                break
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    log = proc.stdout.read().decode()
    assert proc.returncode == -signal.SIGKILL, log
    before = read_rows(merge)[0]
    assert 1 <= len(before) < len(names), f"the run was not killed mid-way: {log}"
    with open(merge, "ab") as fh:  # what a kill in the middle of a write leaves behind
        fh.write(b'{"stage": "merge", "name": "clip_999", "output": {"descr')

    resumed = subprocess.run(_cli(text_manifest, out, config), capture_output=True, text=True,
                             env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    rows = read_rows(merge)[0]
    assert [r["name"] for r in rows[:len(before)]] == [r["name"] for r in before]
    assert len(rows) == len({r["name"] for r in rows}) == len(names)  # no duplicates, none lost
    got = {r["name"]: r["output"] for r in rows}
    assert got == expected, [(n, got[n], expected[n]) for n in names if got[n] != expected[n]]
    assert merge.read_bytes().endswith(b"}\n")  # the torn line is gone
