"""The metrics-only demo: seeded synthetic descriptions, verbatim vs lexical grouping."""

import json

from affectgpt.demo.metrics import run_demo, synthesize


def test_synthesize_is_seeded():
    a = synthesize(20, seed=3)
    assert a == synthesize(20, seed=3)
    assert a != synthesize(20, seed=4)
    descriptions, gold = a
    assert set(descriptions) == set(gold) and all(1 <= len(v) <= 3 for v in gold.values())


def test_demo_writes_results_and_plot(tmp_path):
    run_dir = run_demo(out=tmp_path, samples=40, runs=2, seed=1)
    results = json.loads((run_dir / "results.json").read_text())
    summary = results["summary"]
    assert summary["lexical grouping"]["avg"]["mean"] > summary["verbatim"]["avg"]["mean"] + 0.2
    assert len(results["runs"]) == 2 and len(results["runs"][0]["verbatim"]["samples"]) == 40
    png = (run_dir / "scores.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert (run_dir / "run1-predictions.csv").read_text().startswith("name,english,gold,openset")
