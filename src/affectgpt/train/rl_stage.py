"""The reinforcement-learning stage from manifests: GRPO after stage 1 + 2.

::

    from affectgpt.eval.rewards import RewardSettings
    from affectgpt.train.grpo import GRPOConfig, grpo_train_config
    from affectgpt.train.rl_stage import rl_stage

    result = rl_stage(train=grpo_train_config(out_dir="runs/rl", init_from="runs/stage2"),
                      manifest="synth/fine/manifest.jsonl", train_split="train",
                      eval_manifest="synth/fine/manifest.jsonl",
                      grpo=GRPOConfig(group_size=4, max_new_tokens=64),
                      reward=RewardSettings(wheel_dir="data/emotion-wheel"))

Steps of :func:`rl_stage` (the supervised :func:`affectgpt.train.pipeline.train_stage`
with a GRPO trainer):

1. The model is the supervised one: ``train.init_from`` (a stage-2 run folder, its
   ``model/`` export or a checkpoint) gives the trainable weights, and, when it is a
   model folder, the model config too (``model`` may then be left out). Trainable parts
   are those of supervised training (the adapters, and LoRA when the config has it).
2. Features of every clip come from the feature caches the supervised stages built (or
   are built now): :class:`~affectgpt.features.sources.ModelEncoders` and
   :func:`~affectgpt.features.sources.default_cache_dirs`, as in supervised training.
3. :class:`~affectgpt.train.grpo.GRPOTrainer` samples ``G`` descriptions per clip,
   extracts labels (``extraction``: the offline lexicon, the description's own answer
   list, or an LLM endpoint with its reply cache), scores them with the reward
   (:class:`~affectgpt.eval.rewards.RewardSettings`, default: emotion wheel + length and
   label-gaming penalties), normalises within each group and optimises the clipped
   objective with a KL penalty to the frozen supervised weights. ``train_log.jsonl``
   holds per step the mean reward per component, KL, description length; ``rewards.png``,
   ``kl.png``, ``length.png`` go next to the checkpoints; ``resume="auto"`` continues a
   run exactly.
4. Every ``eval_every`` epochs the eval manifest is described and scored as in supervised
   training (the same evaluator: greedy descriptions, offline or LLM label extraction,
   2024 set metric per split), plus scores for every other split of the manifest
   (``val/avg``, ...) and, given the emotion-wheel tables, the EW score per subset
   (``whole/ew``, ``val/ew``, ``test/ew``: mean wheel F-score at level 1).
5. The best checkpoint by ``best_metric`` is exported to ``<out>/model`` and
   ``<out>/results.json`` sums the run up (scores, reward components per epoch, KL,
   length, timings). The default ``best_metric`` is a validation score, never a test
   score (see :func:`default_best_metric`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from affectgpt.data.collate import collate_batch
from affectgpt.data.dataset import EmotionDataset
from affectgpt.data.manifest import Sample, read_manifest
from affectgpt.eval.rewards import CompositeReward, RewardSettings
from affectgpt.eval.scoring import score_predictions
from affectgpt.features.sources import FeatureSettings, ModelEncoders, default_cache_dirs
from affectgpt.io import atomic_write, read_jsonl
from affectgpt.llm.endpoint import ChatEndpoint
from affectgpt.model.config import ConfigError, ModelConfig, load_config
from affectgpt.train import dist as tdist
from affectgpt.train.config import SELECTION_LABELS, TrainConfig
from affectgpt.train.grpo import GRPOConfig, GRPOTrainer, grpo_train_config, llm_extractor

# The supervised stage's steps, called (not copied): its evaluator, media check, init
# resolution and device choice.
from affectgpt.train.pipeline import (
    EvalSettings,
    StageEvaluator,
    StageResult,
    best_and_last_eval,
    check_media,
    finite_json,
    fit_and_export,
    load_stage_inputs,
    resolve_init,
    scores_block,
    stage_device,
)

log = logging.getLogger("affectgpt.train")

__all__ = ["EXTRACTIONS", "SubsetScorer", "default_best_metric", "rl_stage", "rl_summary",
           "score_model"]

EXTRACTIONS = ("lexicon", "answer", "llm")
MODEL_CONFIG_FILE = "config.yaml"  # what AffectGPT.save_pretrained writes


def default_best_metric(cfg: TrainConfig, samples: Sequence[Sample]) -> str | None:
    """The checkpoint-selection metric of an RL stage whose eval set is ``samples``: the
    supervised protocol's (:meth:`TrainConfig.default_best_metric`), with the eval
    manifest's labelled ``val`` samples as the validation split (an RL stage carves none
    from its training clips). Without them the last checkpoint is kept; a test score only
    with ``select_on="test"`` (the paper protocol)."""
    splits = {s.split for s in samples if s.labels}
    return cfg.default_best_metric("val" in splits, "test" in splits)


class SubsetScorer:
    """An ``eval_fn``: the supervised evaluator, plus scores it does not give.

    It runs the supervised stage's evaluator (descriptions, labels, set metric on
    ``whole`` / ``train`` / ``test``; predictions saved under ``<out>/predictions``),
    then reads the saved predictions back and adds the set metric of every other split
    present (``val/avg``, ...) and, with ``wheel_dir``, the emotion-wheel EW score
    (mean F over the 5 wheels at level 1) of ``whole`` and each split (``<subset>/ew``).
    """

    def __init__(self, samples: list[Sample], sources: Mapping[str, Any],
                 settings: EvalSettings, out_dir: Path, *, progress: bool,
                 wheel_dir: str | os.PathLike | None = None):
        self.inner = StageEvaluator(samples, sources, settings, out_dir, progress=progress)
        self.samples, self.settings, self.out_dir = samples, settings, out_dir
        self._wheel_dir = wheel_dir
        self._wheel = None

    @property
    def seconds(self) -> list[float]:
        return self.inner.seconds

    def wheel(self):
        if self._wheel is None and self._wheel_dir is not None:
            from affectgpt.eval.wheel import WheelResources

            self._wheel = WheelResources.load(self._wheel_dir)
        return self._wheel

    def __call__(self, model, epoch: int) -> dict[str, float]:
        scores = dict(self.inner(model, epoch))
        saved = json.loads((self.out_dir / "predictions" / f"epoch-{epoch:04d}.json")
                           .read_text(encoding="utf-8"))
        preds = {p["name"]: list(p.get("openset") or []) for p in saved["predictions"]}
        scores.update(self.extra_scores(preds, scores))
        return scores

    def extra_scores(self, preds: Mapping[str, Sequence[str]],
                     known: Mapping[str, float] | None = None) -> dict[str, float]:
        """Set-metric scores of splits ``known`` lacks, and EW scores per subset."""
        known = known or {}
        out: dict[str, float] = {}
        labelled = [s for s in self.samples if s.labels]
        subsets = {"whole": labelled}
        for split in sorted({s.split for s in labelled if s.split}):
            subsets[split] = [s for s in labelled if s.split == split]
        for subset, members in subsets.items():
            if subset == "whole" or f"{subset}/avg" in known:
                continue
            part = score_predictions(preds, members, self.settings.grouping)
            out.update({f"{subset}/{k.split('/', 1)[1]}": v for k, v in part.items()
                        if not k.endswith("/n")})
        resources = self.wheel()
        if resources is not None:
            from affectgpt.eval.wheel import WHEELS, evaluate_wheel

            methods = [f"m3-w{k}-l1" for k in WHEELS]
            for subset, members in subsets.items():
                gold = {s.name: list(s.labels) for s in members}
                result = evaluate_wheel(gold, preds, resources, methods=methods)
                if any(s.num_samples for s in result.scores):
                    out[f"{subset}/ew"] = result.ew_fscore(1)
        return out


# --------------------------------------------------------------------------- helpers
def _model_spec(model: str | Path | ModelConfig | None, init_from: str | None,
                ) -> str | Path | ModelConfig:
    """The model config: the given one, else the supervised model folder's."""
    if model is not None:
        return model
    if init_from and (Path(init_from) / MODEL_CONFIG_FILE).is_file():
        return Path(init_from) / MODEL_CONFIG_FILE
    raise ConfigError("the RL stage needs the model config: give init_from as a supervised "
                      "run folder or its model/ folder (they hold config.yaml), or name the "
                      "preset / config file the checkpoint was trained with")


def _build_reward(reward: RewardSettings | CompositeReward | None) -> CompositeReward:
    if isinstance(reward, CompositeReward):
        return reward
    settings = reward or RewardSettings()
    if "wheel" in settings.weights and settings.weights["wheel"] and not settings.wheel_dir:
        settings = RewardSettings(**{**asdict(settings),
                                     "wheel_dir": os.environ.get("AFFECTGPT_WHEEL_DIR")})
    return settings.build()


def rl_summary(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-epoch means of the GRPO step logs (reward, its components, KL, length, ...)
    and their first and last epochs."""
    keys = sorted({k for r in records for k in r
                   if k in ("reward", "reward_std", "kl", "length", "words", "clip_fraction",
                            "zero_advantage", "loss") or k.startswith("reward/")})
    epochs: dict[int, list[Mapping[str, Any]]] = {}
    for r in records:
        epochs.setdefault(int(r["epoch"]), []).append(r)
    per_epoch = []
    for epoch in sorted(epochs):
        rows = epochs[epoch]
        entry: dict[str, Any] = {"epoch": epoch, "steps": len(rows)}
        for key in keys:
            values = [float(r[key]) for r in rows if isinstance(r.get(key), (int, float))]
            if values:
                entry[key] = sum(values) / len(values)
        per_epoch.append(entry)
    return {"per_epoch": per_epoch, "first_epoch": per_epoch[0] if per_epoch else None,
            "last_epoch": per_epoch[-1] if per_epoch else None,
            "extraction_failures": sum(int(r.get("extraction_failures", 0)) for r in records)}


# --------------------------------------------------------------------------- the stage
def rl_stage(
    model: str | Path | ModelConfig | None = None,
    *,
    train: TrainConfig | None = None,
    manifest: str | Path,
    grpo: GRPOConfig | None = None,
    reward: RewardSettings | CompositeReward | None = None,
    extraction: str = "lexicon",
    llm: ChatEndpoint | None = None,
    overrides: Sequence[str] = (),
    eval_manifest: str | Path | None = None,
    features: FeatureSettings | None = None,
    evaluation: EvalSettings | None = None,
    wheel_dir: str | Path | None = None,
    resume: str | os.PathLike | None = None,
    train_split: str | None = None,
    withhold: Sequence[str] = (),
) -> StageResult:
    """GRPO on a supervised model from manifests (see the module docstring).

    ``model``: a preset, YAML file or :class:`ModelConfig` (default: the config saved with
    the ``train.init_from`` model), adjusted by ``overrides``. ``train``: trainer settings
    (default :func:`~affectgpt.train.grpo.grpo_train_config`); ``train.init_from`` is the
    supervised run folder, model folder or checkpoint and is required (RL from random
    adapters is refused). ``grpo``: sampling (G, temperature, top-p, top-k, length) and
    objective (clip range, KL weight, updates per batch). ``reward``: reward settings or
    a ready :class:`CompositeReward` (the wheel component reads ``AFFECTGPT_WHEEL_DIR``
    when its ``wheel_dir`` is unset). ``extraction``: labels of the sampled descriptions
    by ``lexicon`` (offline), ``answer`` (the list the description ends with) or ``llm``
    (``llm``: the endpoint, with its reply cache). ``eval_manifest``/``evaluation``: as
    in supervised training; ``wheel_dir`` adds EW scores to the evaluation (default: the
    reward's wheel tables). ``train.best_metric`` defaults to
    :func:`default_best_metric` of the eval samples (their val split). ``resume``, ``train_split`` and
    ``withhold`` as for :func:`~affectgpt.train.pipeline.train_stage`.
    """
    if extraction not in EXTRACTIONS:
        raise ValueError(f"extraction must be one of {EXTRACTIONS}, got {extraction!r}")
    if extraction == "llm" and llm is None:
        raise ValueError("extraction='llm' needs the LLM endpoint (llm=ChatEndpoint(...))")
    unknown = sorted(set(withhold) - {"video", "audio"})
    if unknown:
        raise ValueError(f"withhold takes 'video' and/or 'audio', not {unknown}")
    train = train or grpo_train_config()
    if not train.init_from and resume is None:
        raise ConfigError("the RL stage starts from a supervised model: set init_from (a "
                          "stage-2 run folder, its model/ or a checkpoint)")
    t0 = time.perf_counter()
    init = resolve_init(train.init_from)
    spec = _model_spec(model, init)
    config = spec if isinstance(spec, ModelConfig) else load_config(spec, list(overrides))
    if isinstance(spec, ModelConfig) and overrides:
        from affectgpt.model.config import apply_overrides

        config = apply_overrides(config, list(overrides))
    grpo = grpo or GRPOConfig()
    reward_fn = _build_reward(reward)
    if wheel_dir is None and isinstance(reward, RewardSettings) and reward.weights.get("wheel"):
        wheel_dir = reward.wheel_dir or os.environ.get("AFFECTGPT_WHEEL_DIR")
    dist_info = tdist.init_distributed(train.device, train.dist_timeout_s)
    client = llm.client() if extraction == "llm" else None
    try:
        return _rl_stage(config, spec=spec, overrides=overrides,
                         train=train.replace(init_from=init), manifest=manifest, grpo=grpo,
                         reward=reward_fn, reward_settings=reward, extraction=extraction,
                         client=client, eval_manifest=eval_manifest,
                         features=features or FeatureSettings(),
                         evaluation=evaluation or EvalSettings(), wheel_dir=wheel_dir,
                         resume=resume, train_split=train_split, withhold=tuple(withhold),
                         dist_info=dist_info, t0=t0)
    finally:
        if client is not None:
            client.close()
        tdist.cleanup(dist_info)


def _rl_stage(config: ModelConfig, *, spec, overrides: Sequence[str], train: TrainConfig,
              manifest: str | Path, grpo: GRPOConfig, reward: CompositeReward,
              reward_settings, extraction: str, client, eval_manifest: str | Path | None,
              features: FeatureSettings, evaluation: EvalSettings, wheel_dir,
              resume, train_split: str | None, withhold: tuple[str, ...],
              dist_info: tdist.DistInfo, t0: float) -> StageResult:
    from affectgpt.model.affectgpt import AffectGPT
    from affectgpt.train.trainer import seed_everything

    out_dir = Path(train.out_dir)
    device = stage_device(train)
    timings: dict[str, float] = {}

    # features (a reward needs gold labels: unlabelled training samples are left out)
    started = time.perf_counter()
    data = load_stage_inputs(config, manifest, eval_manifest, features, train_split=train_split,
                             dist_info=dist_info, device=device, labelled_only=True)
    train_samples, train_sources, train_report, skipped = (
        data.train_samples, data.train_sources, data.train_report, data.skipped)
    eval_samples, eval_sources, eval_report, eval_skipped = (
        data.eval_samples, data.eval_sources, data.eval_report, data.eval_skipped)
    timings["features_s"] = round(time.perf_counter() - started, 3)

    # model, data, reward
    cfg = train
    if cfg.best_metric is None:
        cfg = cfg.replace(best_metric=default_best_metric(cfg, eval_samples))
        if cfg.best_metric is None:
            log.warning("no labelled val sample in the eval manifest: no checkpoint selection "
                        "(the last checkpoint is exported); add a val split to select")
    seed_everything(cfg.seed)
    net = AffectGPT.from_config(config, device=device)
    log.info("%s", net.summary())
    inputs = {m: None if m in withhold else train_sources[m] for m in ("video", "audio")}
    dataset = EmotionDataset(train_samples, **inputs, language=evaluation.language)
    evaluator = None
    if eval_samples:
        eval_inputs = {m: None if m in withhold else eval_sources[m] for m in ("video", "audio")}
        evaluator = SubsetScorer(eval_samples, eval_inputs, evaluation, out_dir,
                                 progress=cfg.progress, wheel_dir=wheel_dir)
    extractor = llm_extractor(client) if extraction == "llm" else extraction

    # training, export (rank 0)
    trainer = GRPOTrainer(net, dataset, reward, cfg=cfg, grpo=grpo, collate_fn=collate_batch,
                          extractor=extractor, eval_fn=evaluator)
    fitted = fit_and_export(trainer, net, out_dir, evaluator=evaluator, resume=resume,
                            dist_info=dist_info, timings=timings, started_at=t0)
    if fitted is None:
        return StageResult(out_dir, out_dir / "model", out_dir / "results.json", {})
    summary, model_dir, source = fitted

    records = read_jsonl(out_dir / "train_log.jsonl")
    best_eval, last_eval = best_and_last_eval(trainer)
    selection = cfg.selection_label if best_eval is not None else SELECTION_LABELS["last"]
    settings = (asdict(reward_settings) if isinstance(reward_settings, RewardSettings)
                else None)
    results = {
        "stage": cfg.stage,
        "model": {"spec": str(spec) if not isinstance(spec, ModelConfig) else config.name,
                  "overrides": list(overrides), "config": config.to_dict(),
                  "parameters": net.parameter_summary()},
        "train_config": cfg.to_dict(),
        "grpo": grpo.to_dict(),
        "reward": {"components": reward.weights, "settings": settings,
                   "extraction": extraction},
        "rl": rl_summary(records),
        "manifest": str(manifest),
        "train_split": train_split,
        "withheld": list(withhold),
        "eval_manifest": str(eval_manifest) if eval_manifest is not None else None,
        "samples": {"train": len(train_samples), "eval": len(eval_samples),
                    "skipped_train": skipped, "skipped_eval": eval_skipped,
                    "train_without_audio": sorted(train_sources["audio"].missing),
                    "train_without_video": sorted(train_sources["video"].missing)},
        "features": {"settings": asdict(features), "train": train_report,
                     "eval": eval_report},
        "evaluation": {**asdict(evaluation), "wheel_dir": str(wheel_dir) if wheel_dir else None},
        "init": {"from": cfg.init_from},
        "exported_from": str(source),
        "model_dir": str(model_dir),
        "scores": scores_block(best_eval, last_eval, selection, summary.get("scores", {})),
        "train": summary,
        "timings": timings,
        "device": str(device),
    }
    results_path = atomic_write(out_dir / "results.json",
                                json.dumps(finite_json(results), indent=2, ensure_ascii=False) + "\n")
    return StageResult(out_dir, model_dir, results_path, results)


def score_model(model_dir: str | Path, manifest: str | Path, *, out_dir: str | Path,
                features: FeatureSettings | None = None,
                evaluation: EvalSettings | None = None,
                wheel_dir: str | Path | None = None, split: str | None = None,
                device: str = "auto", withhold: Sequence[str] = ()) -> dict[str, float]:
    """Describe and score the samples of ``manifest`` (only ``split``'s when given) with a
    saved model, as the stages' evaluation does (set metric per split, EW scores with
    ``wheel_dir``); the predictions go to ``<out_dir>/predictions/epoch-0000.*``.
    For a before / after comparison of a supervised and an RL model on held-out clips."""
    from affectgpt.model.affectgpt import AffectGPT
    from affectgpt.model.llm import resolve_device

    features = features or FeatureSettings()
    evaluation = evaluation or EvalSettings()
    dev = resolve_device(device, 0)
    net = AffectGPT.from_pretrained(model_dir, device=dev)
    samples = read_manifest(manifest)
    if split is not None:
        samples = [s for s in samples if s.split == split]
    if not samples:
        raise ValueError(f"{manifest} has no samples" + (f" of split {split!r}" if split else ""))
    encoders = ModelEncoders(net.config, dtype=features.dtype, device=dev)
    sources, report = encoders.sources(samples, features,
                                       default_cache_dirs(net.config, manifest, features.root))
    samples, _ = check_media(report, samples, features, "evaluation")
    inputs = {m: None if m in withhold else sources[m] for m in ("video", "audio")}
    scorer = SubsetScorer(samples, inputs, evaluation, Path(out_dir), progress=False,
                          wheel_dir=wheel_dir)
    net.eval()
    with torch.no_grad():
        scores = scorer(net, 0)
    return {k: v for k, v in scores.items() if isinstance(v, float) and math.isfinite(v)}
