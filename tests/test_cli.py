"""The `affectgpt` console command, run as a user would (a real subprocess)."""

import json
import os
import subprocess
import sys

import pytest


def affectgpt(*args, check=True):
    env = {"COLUMNS": "200", "PATH": ""}
    if "PYTHONPATH" in os.environ:  # the source tree under test, when it is not the installed one
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    proc = subprocess.run([sys.executable, "-m", "affectgpt.cli", *map(str, args)],
                          capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_help_explains_every_option():
    out = affectgpt("evaluate", "--help").stdout
    for option in ("--gold", "--pred", "--metric", "--grouping", "--label-syntax", "--names", "--split",
                   "--wheel-dir", "--allow-missing", "--encoding", "--output", "--llm-base-url",
                   "--llm-model", "--llm-cache", "--local-server"):
        assert option in out
    assert "extract-labels" in affectgpt("--help").stdout


def test_evaluate_reproduces_reference(mer2024_ov, tmp_path):
    out = tmp_path / "r.json"
    proc = affectgpt("evaluate", "--gold", mer2024_ov / "check-openset.csv",
                     "--pred", mer2024_ov / "predict-openset.csv",
                     "--grouping", f"stored:{mer2024_ov / 'openset-synonym.zip'}", "-o", out)
    assert "Accuracy_s=0.581777108433735 Recall_s=0.4977911646586345 Avg=0.5397841365461847" in proc.stdout
    assert "53.98" in proc.stdout
    data = json.loads(out.read_text())
    run = data["runs"][0]
    assert run["avg"] == pytest.approx(0.5397841365461847, abs=1e-12)
    assert len(run["samples"]) == 332 and data["config"]["label_syntax_used"] == "mertools"


def test_two_runs_give_mean_std(mer2024_ov, tmp_path):
    out = tmp_path / "r.json"
    proc = affectgpt("evaluate", "--gold", mer2024_ov / "check-openset.csv",
                     "--pred", mer2024_ov / "predict-openset.csv", "--pred", mer2024_ov / "check-openset.csv",
                     "--grouping", "none", "-o", out)
    assert "mean±std" in proc.stdout and "60.76±39.24" in proc.stdout
    summary = json.loads(out.read_text())["summary"]
    assert summary["Avg"]["mean"] == pytest.approx((0.21516303308471985 + 1) / 2)


def test_subset_by_split_file(mer2024_ov, tmp_path):
    split = tmp_path / "split.csv"
    split.write_text("name,split\nsample_00000007,test\nsample_00000000,train\n", encoding="utf-8")
    out = tmp_path / "r.json"
    affectgpt("evaluate", "--gold", mer2024_ov / "check-openset.csv", "--pred", mer2024_ov / "predict-openset.csv",
              "--grouping", f"stored:{mer2024_ov / 'openset-synonym.zip'}", "--names", split,
              "--split", "test", "-o", out)
    run = json.loads(out.read_text())["runs"][0]
    assert [s["name"] for s in run["samples"]] == ["sample_00000007"]
    # a split column in the gold file itself
    gold = tmp_path / "gold.csv"
    gold.write_text("name,openset,split\na,['happy'],train\nb,['sad'],test\n", encoding="utf-8")
    pred = tmp_path / "pred.csv"
    pred.write_text("name,openset\na,['sad']\nb,['sad']\n", encoding="utf-8")
    for split, avg in (("test", "Avg=1.0"), ("train", "Avg=0.0"), ("whole", "Avg=0.5")):
        assert avg in affectgpt("evaluate", "--gold", gold, "--pred", pred, "--grouping", "none",
                                "--split", split).stdout


def test_wheel_metric_cli(mer2024_ov, wheel_dir):
    proc = affectgpt("evaluate", "--gold", mer2024_ov / "check-openset.csv",
                     "--pred", mer2024_ov / "predict-openset.csv", "--metric", "wheel", "--wheel-dir", wheel_dir)
    for column in ("M1", "M2", "W1L1", "W5L2", "M-avg", "EW-L1"):
        assert column in proc.stdout


def test_bad_inputs_exit_2_with_clear_message(mer2024_ov, tmp_path):
    pred = tmp_path / "pred.csv"
    pred.write_text("name,openset\nsample_00000000,\"['happy']\"\n", encoding="utf-8")
    proc = affectgpt("evaluate", "--gold", mer2024_ov / "check-openset.csv", "--pred", pred,
                     "--grouping", "none", check=False)
    assert proc.returncode == 2 and "331 of 332 samples have no prediction" in proc.stderr
    pred.write_text("name,openset\nsample_00000000,['happy'\n", encoding="utf-8")
    proc = affectgpt("evaluate", "--gold", mer2024_ov / "check-openset.csv", "--pred", pred, check=False)
    assert proc.returncode == 2 and "sample_00000000" in proc.stderr and "pred.csv" in proc.stderr
    proc = affectgpt("evaluate", "--gold", mer2024_ov / "check-openset.csv", "--pred", pred,
                     "--metric", "wheel", check=False)
    assert proc.returncode == 2 and "--wheel-dir" in proc.stderr


def test_extract_labels_lexicon_then_evaluate(tmp_path):
    src = tmp_path / "desc.jsonl"
    src.write_text('{"name": "a", "english": "She looks worried and sad."}\n'
                   '{"name": "b", "english": "He is not angry at all; he seems cheerful."}\n', encoding="utf-8")
    out = tmp_path / "pred.csv"
    affectgpt("extract-labels", "--input", src, "-o", out)
    assert out.read_text().splitlines() == ["name,openset", "a,\"['worried', 'sad']\"", "b,['cheerful']"]
    gold = tmp_path / "gold.csv"
    gold.write_text("name,openset\na,\"['worry', 'sadness']\"\nb,['happy']\n", encoding="utf-8")
    proc = affectgpt("evaluate", "--gold", gold, "--pred", out, "--grouping", "none")
    assert "Avg=0.0" in proc.stdout
    proc = affectgpt("evaluate", "--gold", gold, "--pred", out, "--grouping", "lexical")
    assert "Accuracy_s=1.0 Recall_s=1.0 Avg=1.0" in proc.stdout


def test_llm_grouping_end_to_end_and_cached_rerun(llm_server, tmp_path):
    """The paper's grouping instruction (in its chat-turn form, which SmolLM2-135M answers
    with lists) against a real local server; at least one sample must be grouped validly.
    The rerun is served from the on-disk cache (zero server calls) and gives identical
    results."""
    gold = tmp_path / "gold.csv"
    gold.write_text("name,openset\na,\"['happy', 'joyful']\"\nb,\"['angry', 'annoyed']\"\n",
                    encoding="utf-8")
    pred = tmp_path / "pred.csv"
    pred.write_text("name,openset\na,['happy']\nb,['furious']\n", encoding="utf-8")
    args = ["evaluate", "--gold", gold, "--pred", pred, "--grouping", "llm:turns",
            "--llm-base-url", llm_server.base_url,
            "--llm-model", llm_server.model, "--llm-cache", tmp_path / "cache.sqlite",
            "--llm-max-attempts", "2", "--llm-concurrency", "2", "--llm-max-tokens", "24"]
    first = affectgpt(*args, "-o", tmp_path / "a.json")
    assert "LLM grouping:" in first.stdout and "LLM grouping: 0 server calls" not in first.stdout
    second = affectgpt(*args, "-o", tmp_path / "b.json")
    assert "LLM grouping: 0 server calls" in second.stdout
    a, b = (json.loads((tmp_path / f).read_text())["runs"][0] for f in ("a.json", "b.json"))
    assert a["samples"] == b["samples"] and a["grouping_failures"] == b["grouping_failures"]
    failed = {failure["name"] for failure in a["grouping_failures"]}
    assert failed < {"a", "b"}, f"no sample was grouped validly: {a['grouping_failures']}"
    for failure in a["grouping_failures"]:  # a weak model's invalid replies are recorded, not hidden
        assert failure["reason"]


def test_extract_labels_llm_cli(llm_server, tmp_path):
    src = tmp_path / "desc.csv"
    src.write_text("name,english\na,She is sad and cries.\nb,\n", encoding="utf-8")
    out = tmp_path / "pred.csv"
    args = ["extract-labels", "--input", src, "-o", out, "--method", "llm",
            "--llm-base-url", llm_server.base_url, "--llm-model", llm_server.model,
            "--llm-cache", tmp_path / "cache.sqlite", "--llm-max-tokens", "16", "--llm-max-attempts", "2"]
    first = affectgpt(*args)
    rows = out.read_text().splitlines()
    failures = out.with_name("pred.csv.failures.jsonl")
    assert rows[0] == "name,openset" and "b,[]" in rows  # a blank description needs no call
    # a description that names its emotion: SmolLM2-135M lists it validly
    assert not failures.exists(), failures.read_text()
    (row,) = [r for r in rows if r.startswith("a,")]
    assert row not in ("a,[]", "a,\"[]\"")
    second = affectgpt(*args)
    assert "LLM: 0 server calls" in second.stderr and out.read_text().splitlines() == rows
    assert "server calls" in first.stderr


def test_model_info_counts_paper_parameters_without_an_llm():
    out = affectgpt("model-info", "paper").stdout
    assert "total: 44,959,744" in out and "feature_dim: 1024" in out
    out = affectgpt("model-info", "small", "--set", "audio.layers=1").stdout
    assert "layers: 1" in out
    bad = affectgpt("model-info", "tiny", "--set", "video.layerz=3", check=False)
    assert bad.returncode == 2 and "did you mean 'layers'" in bad.stderr
