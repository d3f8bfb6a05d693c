"""The demo's optional reinforcement-learning step (``rl=true``): GRPO after stage 1 + 2.

For each seed, :func:`run_rl` starts :func:`affectgpt.train.rl_stage.rl_stage` from that
seed's validation-selected stage-2 export, on the same fine train split with the same
validation split the stage-2 run carved and wrote down (:func:`validation_manifests`):
RL trains on the stage-2 training clips and chooses its checkpoint on the stage-2
validation clips (``val/avg``), never on test. The pipeline then scores the selected RL
model on the test split exactly as every other system, as ``"stage 1 + 2 + RL"``; with
the emotion-wheel tables it adds the EW score on test (:func:`ew_score`) of stage 1 + 2
and of RL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from affectgpt.data.manifest import Sample, read_manifest, write_manifest
from affectgpt.demo.config import RL_SETTINGS, DemoConfig

#: the row of the RL system, and the system it starts from
RL_SYSTEM = "stage 1 + 2 + RL"
SUPERVISED_SYSTEM = "stage 1 + stage 2"
RL_STEP = "stage2-rl"
RL_NOTE = ("GRPO from stage 1 + 2's validation-selected export on the same train split, "
           "checkpoint chosen on the same validation split")


def rl_settings(cfg: DemoConfig) -> dict[str, Any]:
    """The RL settings of ``cfg`` (what the RL steps' records keep), the reward's weights
    and sampling length resolved."""
    out = {k: getattr(cfg, k) for k in RL_SETTINGS}
    out["rl_reward"] = cfg.rl_reward_weights
    out["rl_max_new_tokens"] = cfg.rl_max_new_tokens or cfg.eval_max_new_tokens
    return out


def validation_manifests(train_manifest: str | Path, stage2_dir: str | Path,
                         folder: Path) -> tuple[Path, Path]:
    """The stage-2 training clips with the roles the stage-2 run gave them (its
    ``splits/validation.csv``): ``<folder>/train-val.jsonl`` (split ``train`` or ``val``)
    and ``<folder>/val.jsonl`` (the validation clips alone, RL's eval manifest)."""
    from affectgpt.data.splits import VALIDATION, read_split

    split_file = Path(stage2_dir) / "splits" / "validation.csv"
    if not split_file.is_file():
        raise RuntimeError(f"{split_file} is missing: the stage-2 run carved no validation "
                           "split, so the RL step has nothing to choose its checkpoint on "
                           "(val_fraction > 0 and at least two labelled clips are needed)")
    roles = read_split(split_file)
    samples = [s for s in read_manifest(train_manifest) if s.name in roles]
    missing = sorted(set(roles) - {s.name for s in samples})
    if missing:
        raise RuntimeError(f"{split_file} names clips that {train_manifest} lacks: "
                           f"{missing[:5]}")
    samples = [dataclasses.replace(s, split=roles[s.name]) for s in samples]
    val = [s for s in samples if s.split == VALIDATION]
    if not val:
        raise RuntimeError(f"{split_file} holds no validation clip")
    return (write_manifest(samples, folder / "train-val.jsonl"),
            write_manifest(val, folder / "val.jsonl"))


def run_rl(cfg: DemoConfig, *, seed: int, init_from: str, manifest: Path, val_manifest: Path,
           out_dir: Path, features_root: Path, progress: bool):
    """GRPO from ``init_from`` (a stage-2 export) on ``manifest``'s ``train`` clips, the
    checkpoint chosen on ``val_manifest`` (``val/avg``) and exported to
    ``<out_dir>/model``; resumes an interrupted run. Returns the
    :class:`~affectgpt.train.pipeline.StageResult`."""
    from affectgpt.eval.rewards import RewardSettings
    from affectgpt.features.sources import FeatureSettings
    from affectgpt.train.grpo import GRPOConfig, grpo_train_config
    from affectgpt.train.pipeline import EvalSettings
    from affectgpt.train.rl_stage import rl_stage

    settings = rl_settings(cfg)
    train = grpo_train_config(
        stage=out_dir.name, out_dir=str(out_dir), init_from=init_from, epochs=cfg.rl_epochs,
        batch_size=cfg.rl_batch_size, lr=cfg.rl_lr, min_lr=cfg.rl_lr, seed=seed,
        device=cfg.device, select_on="val", best_metric="val/avg", eval_every=1,
        keep_last=1, progress=progress, smooth_window=3)
    return rl_stage(
        train=train, manifest=manifest, train_split="train", eval_manifest=val_manifest,
        grpo=GRPOConfig(group_size=cfg.rl_group_size,
                        max_new_tokens=settings["rl_max_new_tokens"],
                        temperature=cfg.rl_temperature, kl_coef=cfg.rl_kl_coef),
        reward=RewardSettings(weights=settings["rl_reward"], wheel_dir=cfg.rl_wheel_dir,
                              length_target=cfg.rl_length_target),
        features=FeatureSettings(root=str(features_root), progress=False),
        evaluation=EvalSettings(batch_size=cfg.eval_batch_size,
                                max_new_tokens=cfg.eval_max_new_tokens),
        wheel_dir=cfg.rl_wheel_dir, resume="auto")


def ew_score(predictions: Mapping[str, Sequence[str]], samples: Sequence[Sample],
             wheel_dir: str | Path) -> float | None:
    """The emotion-wheel EW score of ``predictions`` (labels per clip) on ``samples``: the
    mean F over the 5 wheels at level 1 (M3 mapping), as the RL stage's evaluation
    computes it; None when no gold label maps onto a wheel."""
    from affectgpt.eval.wheel import WHEELS, WheelResources, evaluate_wheel

    gold = {s.name: list(s.labels) for s in samples if s.labels}
    result = evaluate_wheel(gold, predictions, WheelResources.load(wheel_dir),
                            methods=[f"m3-w{k}-l1" for k in WHEELS])
    return result.ew_fscore(1) if any(s.num_samples for s in result.scores) else None


def saved_predictions(path: str | Path) -> dict[str, list[str]]:
    """The labels per clip of a ``test-predictions.json`` the demo's scorer wrote."""
    import json

    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {p["name"]: list(p.get("openset") or []) for p in data["predictions"]}

