"""`affectgpt features` on real synthetic clips with the packaged Whisper-base:
an interrupted (SIGKILL) and resumed run yields the same cache as an uninterrupted one."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from affectgpt.data.manifest import read_manifest, write_manifest
from affectgpt.data.synthetic import make_synthetic
from affectgpt.features.cache import FeatureCache


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    make_synthetic(root, 6, cue="audio", seed=5, duration=(2.0, 3.0), size=96, fps=5, workers=1,
                   progress=False)
    samples = read_manifest(root / "manifest.jsonl")
    broken = root / "videos" / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    samples.append(type(samples[0])(name="broken", video=str(broken)))
    write_manifest(samples, root / "manifest.jsonl")
    return root / "manifest.jsonl"


def _cmd(manifest, out, *extra):
    return [sys.executable, "-m", "affectgpt.cli", "features", "--manifest", str(manifest),
            "--encoder", "whisper-base-clip", "--out", str(out), "--shard-size", "2",
            "--workers", "1", *extra]


def test_kill_and_resume_equals_uninterrupted(clips, tmp_path):
    full = subprocess.run(_cmd(clips, tmp_path / "full"), capture_output=True, text=True)
    assert full.returncode == 0, full.stderr
    assert "6 encoded, 0 already cached, 1 failed" in full.stdout
    failures = [json.loads(x) for x in (tmp_path / "full" / "failures.jsonl").read_text().splitlines()]
    assert [f["name"] for f in failures] == ["broken"] and "Media" in failures[0]["reason"]

    out = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(clips, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "shard-00000.safetensors").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(FeatureCache(out))
    assert 2 <= done_before < 6, "the kill should land mid-run"
    resumed = subprocess.run(_cmd(clips, out), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{done_before} already cached" in resumed.stdout

    a, b = FeatureCache(tmp_path / "full").load_all(), FeatureCache(out).load_all()
    assert sorted(a) == sorted(b) and len(a) == 6
    for name in a:
        assert a[name].shape == (8, 512)
        assert torch.equal(a[name], b[name]), name
