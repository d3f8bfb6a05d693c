"""The README's describe block is rendered from benchmarks/results/describe-cpu.json (written
by ``bench_describe.py --out``) and agrees with it whenever the README has the block; the
block is kept by the demo table's helpers, next to the demo block without touching it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from affectgpt.demo.results import README_END as DEMO_END
from affectgpt.demo.results import README_START as DEMO_START
from affectgpt.demo.results import readme_block, replace_readme_block

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return _load("readme_describe_table", ROOT / "scripts" / "readme_describe_table.py")


@pytest.fixture(scope="module")
def bench():
    return _load("bench_describe", ROOT / "benchmarks" / "bench_describe.py")


def test_readme_agrees_with_the_committed_results_file(script):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme_block(readme, script.README_START, script.README_END)
    if block is not None:  # the README shows the describe results: they are the file's
        assert block == script.expected_block(ROOT / script.RESULTS)
        if (ROOT / script.RESULTS).is_file():
            assert "No benchmark run" not in block
    assert script.main(["--check"]) == 0


def _results(bench, *, model: bool) -> dict:
    """A results file as bench_describe.py writes it, from per-clip scores."""
    rows = []
    for cue, lexicon, face, fused, merged in (("video", 0.0, 1.0, 0.5, 0.25),
                                              ("video", 0.0, 0.5, 1.0, None),
                                              ("text", 1.0, 0.0, 0.75, 0.5),
                                              ("all", 0.5, 0.5, 1.0, None)):
        scores = {"subtitle lexicon": lexicon, "face only": face, "fused (default)": fused}
        if merged is not None:
            scores["merge (LLM description)"] = merged
        if model:
            scores["trained model"] = 0.25
        rows.append({"name": f"clip{len(rows)}", "cue": cue, "scores": scores,
                     "timings": {"decode": 0.1, "asr": 2.0, "faces": 0.5, "clues": 0.1}})
    systems = ["subtitle lexicon", "face only", "fused (default)", "merge (LLM description)",
               *(["trained model"] if model else [])]
    merged_rows = [r for r in rows if "merge (LLM description)" in r["scores"]]
    return {
        "benchmark": "describe", "schema": bench.RESULTS_SCHEMA, "complete": True,
        "date": "2026-12-06",
        "machine": {"cpu": "Test CPU", "cores": 2, "vector_extensions": "avx2 fma",
                    "load_average": [0.2, 0.1, 0.1]},
        "settings": {"llm": "packaged SmolLM2-135M-Instruct, local",
                     "model": "runs/demo/model" if model else None},
        "ten_second_clip": {"duration": 10.0, "first_call": 9.1, "steady": 5.7,
                            "steps": {"decode": 0.05, "asr": 2.2, "merge": 2.8}},
        "clips": {"validation": 6, "test": len(rows), "merged": len(merged_rows),
                  "test_per_cue": {c: sum(r["cue"] == c for r in rows)
                                   for c in ("video", "audio", "text", "all")}},
        "systems": systems,
        "summary": bench.summarise(rows, [s for s in systems if "merge" not in s]),
        "merged_summary": bench.summarise(merged_rows, systems),
        "seconds_per_clip": {
            "clues": bench.mean_steps([r["timings"] for r in rows], bench.STEPS),
            "merged": bench.mean_steps([{**r["timings"], "merge": 3.0, "total": 5.7}
                                        for r in merged_rows], (*bench.STEPS, "merge", "total")),
            "trained_model": 1.25 if model else None},
    }


def test_the_block_shows_the_benchmark_summary(bench, script):
    results = _results(bench, model=True)
    face = results["summary"]["face only"]
    assert face["cues"]["video"] == {"avg": 0.75, "clips": 2} and face["avg"] == 0.5
    assert "audio" not in face["cues"]  # no clip of that cue: no cell
    block = script.render_readme_block(json.loads(json.dumps(results)))
    lines = block.splitlines()
    assert lines[0] == script.README_START and lines[-1] == script.README_END
    assert "(2026-12-06, Test CPU, 2 cores, avx2 fma; load average 0.2 at the start)" in block
    assert "described in **5.7 s** (decode 0.1, asr 2.2, merge 2.8; 9.1 s on the first" in block
    assert "On 4 synthetic test clips" in block and "(or all three; 2 video, 0 audio, 1 text, 1 all)" in block
    assert "| face CNN alone | 75.0 | - | 0.0 | 50.0 | 50.0 |" in lines
    assert "| subtitle lexicon (baseline) | 0.0 | - | 100.0 | 50.0 | 37.5 |" in lines
    assert "| trained model (`--model`) | 25.0 | - | 25.0 | 25.0 | 25.0 |" in lines
    # the merged clips' table: the LLM's labels beside the other systems on the same clips
    merged = block[block.index("The 2 of them also merged by the LLM (packaged SmolLM2"):]
    assert "| the LLM description's own labels | 25.0 | - | 50.0 | - | 37.5 |" in merged
    assert "| fused clues, default weights (`affectgpt describe`) | 50.0 | - | 75.0 | - | 62.5 |" \
        in merged
    assert "| clues only (every test clip) | 0.10 | 2.00 | 0.50 | 0.10 | - | - |" in lines
    assert "| with the LLM merge (merged clips) | 0.10 | 2.00 | 0.50 | 0.10 | 3.00 | 5.70 |" in lines
    assert "The trained model (`runs/demo/model`, given the transcript) takes 1.25 s" in block

    without = script.render_readme_block(_results(bench, model=False))
    assert "trained model" not in without
    with pytest.raises(ValueError, match="not a complete benchmark run"):
        script.render_readme_block({**results, "complete": False})


def test_check_and_write_keep_the_demo_block(bench, script, tmp_path):
    results_file = tmp_path / "describe-cpu.json"
    results_file.write_text(json.dumps(_results(bench, model=False)))
    demo = f"{DEMO_START}\ndemo numbers\n{DEMO_END}"
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{demo}\n\n{script.README_START}\nold\n{script.README_END}\n\nend\n")
    args = ["--results", str(results_file), "--readme", str(readme)]
    assert script.main([*args, "--check"]) == 1
    assert script.main(args) == 0
    assert script.main([*args, "--check"]) == 0
    text = readme.read_text()
    assert text.startswith(f"# x\n\n{demo}\n\n") and text.endswith("\n\nend\n")
    assert "| face CNN alone | 75.0 | - | 0.0 | 50.0 | 50.0 |" in text
    readme.write_text(text.replace("| 75.0 |", "| 76.0 |", 1))  # a hand-edited number
    assert script.main([*args, "--check"]) == 1

    missing = ["--results", str(tmp_path / "none.json"), "--readme", str(readme)]
    assert script.main(missing) == 0  # no file: the block shows no numbers
    assert "No benchmark run is committed yet" in readme.read_text()
    assert script.main([*missing, "--check"]) == 0

    bare = tmp_path / "BARE.md"
    bare.write_text("# no block\n")
    bare_args = ["--results", str(results_file), "--readme", str(bare)]
    assert script.main([*bare_args, "--check"]) == 0  # nothing to check
    assert script.main(bare_args) == 1 and bare.read_text() == "# no block\n"
    with pytest.raises(ValueError, match="no describe block"):
        replace_readme_block("x", "y", script.README_START, script.README_END)
