"""`affectgpt infer`: batched, resumable (no duplicate rows after a crash), unreadable clips
recorded as failures while the rest proceeds; its CSV scores through `affectgpt evaluate`."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")

from pipeline_fixtures import REAL_ENCODERS, make_corpus, require_media_stack  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    require_media_stack()
    from affectgpt.data.manifest import write_manifest
    from affectgpt.model import AffectGPT, load_config

    root = tmp_path_factory.mktemp("infer")
    corpus = make_corpus(root, n=5, seed=7)
    broken = root / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not really a video" * 40)
    samples = list(corpus["samples"])
    samples.insert(2, replace(samples[1], name="broken", video=str(broken)))
    manifest = write_manifest(samples, root / "with-broken.jsonl")
    torch.manual_seed(0)
    model_dir = AffectGPT.from_config(load_config("tiny", REAL_ENCODERS)).save_pretrained(
        root / "model")
    return {"root": root, "manifest": manifest, "model": model_dir, "corpus": corpus,
            "names": [s.name for s in samples]}


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _infer(setup, out, *extra):
    from affectgpt.cli import main

    return main(["infer", "--model", str(setup["model"]), "--manifest", str(setup["manifest"]),
                 "--out", str(out), "--batch-size", "2", "--max-new-tokens", "6", "--quiet",
                 *extra])


def test_infer_records_failures_resumes_without_duplicates_and_evaluates(setup, tmp_path,
                                                                         capsys):
    from affectgpt.cli import main

    out = tmp_path / "preds.csv"
    assert _infer(setup, out) == 0
    assert "6 clips: 5 described, 0 done before, 1 failed" in capsys.readouterr().out
    rows = _rows(out)
    good = [n for n in setup["names"] if n != "broken"]
    assert [r["name"] for r in rows] == good
    assert list(rows[0]) == ["name", "description", "openset"]
    failures = [json.loads(x) for x in (tmp_path / "preds.failures.jsonl").read_text().splitlines()]
    assert [f["name"] for f in failures] == ["broken"] and "broken.mp4" in failures[0]["error"]
    progress = tmp_path / "preds.progress.jsonl"
    records = [json.loads(x) for x in progress.read_text().splitlines()]
    silent = next(r for r in records if r["name"] == setup["corpus"]["silent"])
    assert silent["has_audio"] is False and silent["has_video"] is True

    # a crash after two clips, in the middle of writing the third line
    lines = progress.read_text().splitlines(keepends=True)
    progress.write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])
    out.unlink()
    assert _infer(setup, out) == 0
    assert "6 clips: 3 described, 2 done before, 1 failed" in capsys.readouterr().out
    names = [json.loads(x)["name"] for x in progress.read_text().splitlines()]
    assert sorted(names) == sorted(good) and len(names) == len(set(names))
    assert _rows(out) == rows  # greedy: the same descriptions as the uninterrupted run

    # a finished run does nothing more
    assert _infer(setup, out) == 0
    assert "0 described, 5 done before" in capsys.readouterr().out

    # the CSV is what `affectgpt evaluate --pred` reads (gold: the manifest's labels)
    report = tmp_path / "scores.json"
    assert main(["evaluate", "--gold", str(setup["corpus"]["fine"]), "--gold-column", "labels",
                 "--pred", str(out), "--split", "test", "--output", str(report)]) == 0
    scored = json.loads(report.read_text())["runs"][0]
    assert scored["num_samples"] == 2 and 0.0 <= scored["avg"] <= 1.0


def test_infer_split_and_errors(setup, tmp_path, capsys):
    out = tmp_path / "test.csv"
    assert _infer(setup, out, "--split", "test") == 0
    assert [r["name"] for r in _rows(out)] == [s.name for s in setup["corpus"]["samples"]
                                               if s.split == "test"]
    assert _infer(setup, tmp_path / "x.csv", "--split", "dev") == 2
    assert "no sample" in capsys.readouterr().err
    from affectgpt.cli import main

    assert main(["infer", "--model", str(tmp_path / "nowhere"), "--manifest",
                 str(setup["manifest"]), "--out", str(out)]) == 2
    assert "no AffectGPT checkpoint" in capsys.readouterr().err


def test_describe_cli_on_a_silent_clip(setup, capsys):
    from affectgpt.cli import main

    silent = next(s for s in setup["corpus"]["samples"] if s.name == setup["corpus"]["silent"])
    assert main(["describe", silent.video, "--subtitle", "Well, hello.", "--model",
                 str(setup["model"]), "--max-new-tokens", "6", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["has_video"] and not result["has_audio"]
    assert result["subtitle"] == "Well, hello." and isinstance(result["labels"], list)
    assert main(["describe", silent.video, "--model", str(setup["model"]),
                 "--max-new-tokens", "4"]) == 0
    assert "labels:" in capsys.readouterr().out
