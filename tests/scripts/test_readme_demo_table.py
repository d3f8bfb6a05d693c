"""The README's demo block is rendered from benchmarks/results/demo-cpu.json and agrees with
it; mean ± std (population) and the findings are computed from the per-seed scores."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from affectgpt.demo.results import (
    README_END,
    README_START,
    aggregate,
    check_findings,
    readme_block,
    render_pending_block,
    render_readme_block,
    replace_readme_block,
)

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "demo-cpu.json"


def _script():
    spec = importlib.util.spec_from_file_location("readme_demo_table",
                                                  ROOT / "scripts" / "readme_demo_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_agrees_with_the_committed_results_file():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme_block(readme)
    assert block is not None, "the README lost its demo block markers"
    if RESULTS.is_file():
        assert block == render_readme_block(json.loads(RESULTS.read_text(encoding="utf-8")))
    else:  # no numbers that no file backs
        assert block == render_pending_block()
    assert _script().main(["--check"]) == 0


def _results(per_seed):
    systems = aggregate(per_seed)
    rows = [{"name": name, "scores": cols} for name, cols in systems.items()]
    return {"created": "2026-12-05", "seeds": [0, 1, 2], "test_clips": 56,
            "selection": "best epoch on validation", "steps_seconds": 600.0,
            "machine": {"cpu": "Test CPU", "cores": 2, "vector_extensions": "avx2 fma"},
            "systems": rows[:3], "modalities": rows[3:],
            "findings": check_findings(systems)}


def _seed_scores(avgs):
    return [{"accuracy": a, "recall": a, "avg": a, "cue text": a / 2} for a in avgs]


def test_mean_std_and_findings_from_the_seeds():
    per_seed = {"untrained": _seed_scores([0.10, 0.12, 0.14]),
                "stage 1 + stage 2": _seed_scores([0.40, 0.30, 0.35]),
                "stage 2 only": _seed_scores([0.36, 0.34, 0.35])}
    systems = aggregate(per_seed)
    cell = systems["stage 1 + stage 2"]["avg"]
    assert cell["mean"] == pytest.approx(0.35)
    assert cell["std"] == pytest.approx(math.sqrt(((0.05) ** 2 + 0.05 ** 2) / 3))  # ddof=0
    assert "cue audio" not in systems["untrained"]
    findings = {f["statement"]: f for f in check_findings(systems)}
    trained = findings["trained above untrained"]
    assert trained["holds"] and trained["clear"]
    assert trained["difference"] == pytest.approx(0.23)
    two_stage = findings["stage 1 + stage 2 above stage 2 only (Table 4)"]
    assert not two_stage["holds"] and not two_stage["clear"]  # equal means: not above
    assert "text only" not in " ".join(findings)  # systems not run are left out


def test_check_fails_when_the_readme_and_the_file_disagree(tmp_path):
    per_seed = {"untrained": _seed_scores([0.1, 0.1, 0.1]),
                "stage 1 + stage 2": _seed_scores([0.3, 0.32, 0.34]),
                "text only": _seed_scores([0.05]),
                "A+V+T": _seed_scores([0.3, 0.3, 0.3]), "A+T": _seed_scores([0.2, 0.2, 0.3])}
    results_file = tmp_path / "demo-cpu.json"
    results_file.write_text(json.dumps(_results(per_seed)))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{README_START}\nold\n{README_END}\n\nafter\n")
    script = _script()
    args = ["--results", str(results_file), "--readme", str(readme)]
    assert script.main([*args, "--check"]) == 1
    assert script.main(args) == 0
    assert script.main([*args, "--check"]) == 0
    text = readme.read_text()
    assert text.startswith("# x\n\n") and text.endswith("\n\nafter\n")
    assert "| stage 1 + stage 2 | 32.0 ± 1.6 | 32.0 ± 1.6 | 32.0 ± 1.6 |" in text
    assert "| text only | 5.0 ± 0.0 |" in text and "Test CPU, 2 cores, avx2 fma" in text
    assert "holds: A+V+T above A+T" in text
    assert "steps 10.0 min; seeds 0, 1, 2" in text
    # optional steps are timed apart from what the defaults run
    timed = dict(_results(per_seed), optional_steps_seconds={"modalities": 240.0})
    results_file.write_text(json.dumps(timed))
    assert script.main([*args, "--check"]) == 1 and script.main(args) == 0
    assert ("steps 10.0 min (the defaults 6.0 min; modalities=true 4.0 min); seeds"
            in readme.read_text())
    readme.write_text(text)
    readme.write_text(text.replace("32.0 ± 1.6", "33.0 ± 1.6", 1))  # a hand-edited number
    assert script.main([*args, "--check"]) == 1
    with pytest.raises(ValueError, match="no demo block"):
        replace_readme_block("no markers", "x")


def test_time_line_gives_the_defaults_profile_and_the_slow_machine_estimate():
    from affectgpt.demo.results import SLOW_MACHINE_FACTOR, time_line

    per_seed = {"untrained": _seed_scores([0.1, 0.1, 0.1])}
    assert time_line(_results(per_seed)) is None  # an older file: no line, no numbers
    timed = dict(_results(per_seed), optional_steps_seconds={"rl": 240.0},
                 defaults_profile={"features_s": 40.0, "train_forward_backward_s": 200.4,
                                   "test_generation_s": 60.0})
    line = time_line(timed)
    assert line.startswith("Where the defaults' 6.0 min went (as measured when each step "
                           "ran): train forward backward 200 s, test generation 60 s, "
                           "features 40 s.")
    assert f"about {6 * SLOW_MACHINE_FACTOR:.0f} min there" in line
    assert line in render_readme_block(timed)
