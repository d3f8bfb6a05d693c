"""The demo's optional RL step (``rl=true``) on the reduced demo: it reuses the finished
supervised steps, runs GRPO per seed from the stage-2 exports with the checkpoint chosen on
the stage-2 validation split, scores the test split like every system, and reports the row
"stage 1 + 2 + RL", its finding and the EW scores."""

from __future__ import annotations

import json
import math

import pytest
from rich.console import Console

from affectgpt.data.manifest import read_manifest
from affectgpt.data.splits import read_split
from affectgpt.demo import Demo, DemoConfig, DemoConfigError
from affectgpt.demo.config import RL_SETTINGS
from affectgpt.demo.pipeline import SYSTEMS
from affectgpt.demo.results import COLUMNS, ew_line
from affectgpt.demo.rl import RL_SYSTEM, SUPERVISED_SYSTEM

pytestmark = pytest.mark.slow

#: tiny RL settings: one epoch, groups of two, short samples (a few seconds per seed)
TINY_RL = ["rl=true", "rl_epochs=1", "rl_group_size=2", "rl_max_new_tokens=6",
           "rl_lr=1e-3"]


def _rl_steps(cfg: DemoConfig) -> list[str]:
    return [f"stage2-rl-seed{seed}" for seed in cfg.seeds]


@pytest.fixture(scope="session")
def rl_run(demo_run, wheel_dir):
    """The reduced demo again with the tiny RL step and the wheel tables, in the same
    output folder as the finished default run."""
    out, demo, _ = demo_run
    cfg = demo.cfg.override([*TINY_RL, f"rl_wheel_dir={wheel_dir}"])
    rl_demo = Demo(cfg, out, progress=False, console=Console(quiet=True))
    report_dir = rl_demo.run()
    return out, demo, rl_demo, report_dir


def test_rl_step_runs_after_stage2_and_reuses_every_other_step(rl_run):
    _, demo, rl_demo, report_dir = rl_run
    cfg = rl_demo.cfg
    assert rl_demo.work == demo.work  # the RL settings leave the work folder alone
    assert rl_demo.rl_work.parent == demo.work
    names = [r.name for r in rl_demo.steps.records]
    expected = []
    for name in (r.name for r in demo.steps.records):
        expected.append(name)
        if name.startswith("stage2-seed"):
            expected.append(name.replace("stage2-", "stage2-rl-"))
    assert names == expected
    for record in rl_demo.steps.records:
        assert record.reused == (record.name not in _rl_steps(cfg)), record.name

    test_manifest = rl_demo.steps_output("corpus")["test"]
    test_names = {s.name for s in read_manifest(test_manifest)}
    for seed in cfg.seeds:
        out = rl_demo.steps_output(f"stage2-rl-seed{seed}")
        stage2 = rl_demo.steps_output(f"stage2-seed{seed}")
        run = json.loads((rl_demo.rl_work / f"stage2-rl-seed{seed}" / "results.json")
                         .read_text())
        # GRPO started from this seed's validation-selected stage-2 export
        assert run["init"]["from"] == stage2["model"] == out["init_from"]
        # ... on the stage-2 training clips, chose its checkpoint on the stage-2 validation
        # clips (val/avg), never on test
        roles = read_split(rl_demo.work / f"stage2-seed{seed}" / "splits" / "validation.csv")
        val_names = {n for n, role in roles.items() if role == "val"}
        eval_names = {s.name for s in read_manifest(run["eval_manifest"])}
        assert eval_names == val_names and not eval_names & test_names
        train = [s for s in read_manifest(run["manifest"]) if s.split == run["train_split"]]
        assert {s.name for s in train} == {n for n, role in roles.items() if role == "train"}
        assert run["samples"]["train"] == len(train) and not {s.name for s in train} & test_names
        assert run["train_config"]["best_metric"] == out["best_metric"] == "val/avg"
        assert run["train_config"]["select_on"] == "val"
        assert run["scores"]["selection"] == "best epoch on validation"
        assert "val/avg" in run["scores"]["best"]
        # GRPO did something: every step sampled and scored groups, and the exported
        # weights moved away from the stage-2 export
        log = [json.loads(x) for x in (rl_demo.rl_work / f"stage2-rl-seed{seed}" /
                                       "train_log.jsonl").read_text().splitlines()]
        assert len(log) == out["steps"] == math.ceil(len(train) / cfg.rl_batch_size)
        assert all("reward" in r and "kl" in r for r in log)
        assert any(r["zero_advantage"] < 1 for r in log)  # some group had a learning signal
        _assert_weights_differ(out["model"], stage2["model"])
        # the test split was scored like every system, at the selected checkpoint
        assert set(out["test"]) == set(stage2["test"]) >= set(COLUMNS[:3])
        predictions = json.loads((rl_demo.rl_work / f"stage2-rl-seed{seed}" /
                                  "test-predictions.json").read_text())
        assert {p["name"] for p in predictions["predictions"]} == test_names
        assert predictions["scores"] == out["test"]
        # EW on test of both models, from the wheel tables
        assert set(out["ew"]) == {SUPERVISED_SYSTEM, RL_SYSTEM}
        assert all(0.0 <= v <= 1.0 for v in out["ew"].values())
        assert out["settings"]["rl_group_size"] == 2 and out["settings"]["rl_epochs"] == 1

    summary = json.loads((report_dir / "demo-results.json").read_text())
    assert [s["name"] for s in summary["systems"]] == [n for n, _, _ in SYSTEMS] + [RL_SYSTEM]
    row = summary["systems"][-1]
    assert row["seeds"] == cfg.seeds and row["step"] == "stage2-rl"
    values = [rl_demo.steps_output(f"stage2-rl-seed{s}")["test"]["avg"] for s in cfg.seeds]
    assert row["scores"]["avg"]["values"] == values
    finding = next(f for f in summary["findings"] if f["left"] == RL_SYSTEM)
    supervised = [rl_demo.steps_output(f"stage2-seed{s}")["test"]["avg"] for s in cfg.seeds]
    assert finding["right"] == SUPERVISED_SYSTEM
    assert finding["difference"] == pytest.approx(sum(values) / len(values)
                                                  - sum(supervised) / len(supervised))
    assert finding["holds"] == (finding["difference"] > 0)
    assert set(summary["rl"]["ew"]) == {SUPERVISED_SYSTEM, RL_SYSTEM}
    assert summary["rl"]["ew"][RL_SYSTEM]["values"] == [
        rl_demo.steps_output(f"stage2-rl-seed{s}")["ew"][RL_SYSTEM] for s in cfg.seeds]
    assert [t["name"] for t in summary["timings"]] == names  # the RL steps' timings too
    assert all(t["cpu_seconds"] > 0 for t in summary["timings"] if t["name"] in
               _rl_steps(cfg))
    assert summary["profile"]["rl_train_s"] > 0
    assert summary["optional_steps_seconds"]["rl"] == pytest.approx(sum(
        t["seconds"] for t in summary["timings"] if t["name"] in _rl_steps(cfg)), abs=0.1)
    html = (report_dir / "report.html").read_text()
    md = (report_dir / "report.md").read_text()
    for text in (RL_SYSTEM, "RL after stage 1 + 2 above stage 1 + 2", "EW score on test"):
        assert text in html, text
        assert text.replace("+", r"\+") in md, text


def test_a_second_rl_run_reuses_the_rl_steps(rl_run):
    out, _, rl_demo, first_report = rl_run
    again = Demo(rl_demo.cfg, out, progress=False, console=Console(quiet=True))
    report_dir = again.run()
    assert [r.name for r in again.steps.records] == [r.name for r in rl_demo.steps.records]
    assert all(r.reused for r in again.steps.records)
    first = json.loads((first_report / "demo-results.json").read_text())
    second = json.loads((report_dir / "demo-results.json").read_text())
    assert first["systems"] == second["systems"] and first["rl"] == second["rl"]


def test_rl_off_leaves_the_results_unchanged(demo_run):
    _, demo, report_dir = demo_run
    assert not demo.cfg.rl
    summary = json.loads((report_dir / "demo-results.json").read_text())
    assert "rl" not in summary
    assert RL_SYSTEM not in [s["name"] for s in summary["systems"]]
    assert not any(RL_SYSTEM in (f["left"], f["right"]) for f in summary["findings"])
    assert not any(t["name"].startswith("stage2-rl") for t in summary["timings"])
    assert "rl" not in summary["optional_steps_seconds"]
    assert RL_SYSTEM not in (report_dir / "report.html").read_text()


def test_rl_settings_name_only_the_rl_folder():
    base = DemoConfig.reduced()
    on = base.override(TINY_RL)
    changed = on.override(["rl_lr=1e-4"])
    assert base.fingerprint() == on.fingerprint() == changed.fingerprint()
    assert on.fingerprint(RL_SETTINGS) != changed.fingerprint(RL_SETTINGS)
    assert DemoConfig().override(["rl=true"]).fingerprint() == DemoConfig().fingerprint()
    # the reward: wheel-based with the tables, set-metric based without
    assert on.rl_reward_weights == {"set": 1.0, "length": 1.0, "gaming": 1.0}
    assert on.override(["rl_reward={set: 2, format: 1}"]).rl_reward_weights == {
        "set": 2.0, "format": 1.0}


def test_rl_settings_are_checked(wheel_dir):
    assert DemoConfig().override([f"rl_wheel_dir={wheel_dir}"]).rl_reward_weights["wheel"] == 1
    for bad in (["rl_group_size=1"], ["rl_epochs=0"], ["rl_lr=0"], ["rl_kl_coef=-1"],
                ["rl_max_new_tokens=0"], ["rl_reward={}"], ["rl_reward={nope: 1}"],
                ["rl_reward={set: many}"], ["rl_reward={wheel: 1}"],
                ["rl_wheel_dir=/no/such/folder"], ["rl=true", "select_on=test"]):
        with pytest.raises(DemoConfigError):
            DemoConfig().override(bad)


def test_ew_line_says_what_was_measured():
    assert "not computed" in ew_line({"ew": None})
    cell = {"mean": 0.5, "std": 0.1, "values": [0.4, 0.6]}
    line = ew_line({"ew": {SUPERVISED_SYSTEM: cell, RL_SYSTEM: cell}})
    assert f"{RL_SYSTEM} 50.0 ± 10.0" in line and "not computed" not in line


def _assert_weights_differ(model_a, model_b) -> None:
    from pathlib import Path

    from safetensors.torch import load_file

    a = load_file(str(Path(model_a) / "adapters.safetensors"))
    b = load_file(str(Path(model_b) / "adapters.safetensors"))
    assert a.keys() == b.keys() and a
    assert any(not (a[k] == b[k]).all() for k in a), "the RL export equals the stage-2 one"
