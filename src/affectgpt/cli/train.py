"""``affectgpt train``: one training stage from manifests (see :mod:`affectgpt.train.pipeline`,
and :mod:`affectgpt.train.rl_stage` for ``--stage rl``)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from typing import Any

from affectgpt.cli.options import add_llm_options, llm_config, local_server_scope
from affectgpt.config import errors_as, parse_override, read_mapping
from affectgpt.train.config import TrainSettingsError

__all__ = ["TrainSettingsError", "add_train_parser", "cmd_train", "grpo_config_from_args",
           "reward_settings_from_args", "train_config_from_args"]


DESCRIPTION = """Train one AffectGPT stage on a manifest and export the model.

Stage 1 pre-trains on a large coarse set (EMER-Coarse, or `affectgpt make-synthetic
--coarse`); stage 2 continues on the fine set (EMER-Fine train) from stage 1
(--init-from) and is evaluated on the fine manifest's train and test splits.

What happens:
  1. the frozen encoders named by the model config (video.encoder, audio.encoder) encode
     every clip once into feature caches (default <manifest dir>/features/<encoder>;
     reused on later runs); a clip without an audio track is a sample without audio,
     a clip that cannot be read stops the run unless --skip-bad-media
  2. the adapters start random, from --video-llama PTH or from --init-from (a previous
     run folder: its exported model/), then train with AdamW, warm-up + cosine
  3. every eval_every epochs the --eval-manifest clips are described (greedy), labels
     are extracted offline and scored with the 2024 set metric (lexical grouping) on
     the whole set and its train/test splits (whole/avg, test/avg, ...)
     and on a validation split carved from the training samples (val_size, val_seed;
     OUT/splits/validation.csv): val/avg, ...
  4. the best checkpoint on validation (best_metric, default val/avg; --select-on test:
     best epoch on test (paper protocol), labelled so) or the last is exported to
     OUT/model (AffectGPT.from_pretrained / affectgpt infer --model OUT/model)

Outputs in OUT: config.json, train_log.jsonl, eval_log.jsonl, loss.png, scores.png,
checkpoint-<step>/ (latest, best), predictions/epoch-NNNN.{csv,json}, summary.json,
model/ and results.json (scores, timings, feature caches, samples).

Examples:
  affectgpt train --preset small --stage 1 --manifest synth/coarse/manifest.jsonl \\
      --out runs/stage1 --train epochs=5 --train batch_size=4
  affectgpt train --preset small --stage 2 --manifest synth/fine/manifest.jsonl \\
      --split train --eval-manifest synth/fine/manifest.jsonl --init-from runs/stage1 \\
      --out runs/stage2
  affectgpt train ... --out runs/stage2 --resume auto        # continue an interrupted run

Stage rl (reinforcement learning, GRPO) continues from the supervised model (--init-from
the stage-2 run folder; its model config is used unless --preset is given). For every
training clip it samples --group-size descriptions (--temperature, --top-p, --top-k,
--rl-max-new-tokens), extracts their labels (--reward-extract: offline lexicon, the
description's own answer list, or the --llm-* endpoint with its reply cache), scores
them with the reward (--reward: weighted emotion-wheel score, set metric, format,
length and label-gaming penalties), normalises rewards within each group and optimises
the clipped policy objective (--clip-eps, --updates-per-batch) with a KL penalty
(--kl-coef) to the frozen supervised model. Trainable parts are those of supervised
training (adapters, LoRA when the config has it). Trainer defaults for rl: lr 1e-6
constant, 1 epoch, 2 clips per step, gradient clipping at 1 (change with --train).
Outputs as above plus rewards.png, kl.png, length.png, reference.safetensors (the
frozen supervised weights) and, per step in train_log.jsonl, reward, reward/<component>,
kl, length, clip_fraction. The checkpoint exported to OUT/model is selected on
validation: best_metric defaults to val/avg when the --eval-manifest has val samples
(else train/avg; never a test score unless --train best_metric=test/avg); with
--wheel-dir the evaluation adds EW scores (whole/ew, val/ew, test/ew).

  affectgpt train --stage rl --manifest synth/fine/manifest.jsonl --split train \\
      --eval-manifest synth/fine/manifest.jsonl --init-from runs/stage2 --out runs/rl \\
      --wheel-dir data/emotion-wheel --group-size 4 --rl-max-new-tokens 64 \\
      --reward wheel=1,length=1,gaming=1 --train epochs=2 --train lr=1e-5
"""


def _train_fields_help() -> str:
    from affectgpt.train.config import TrainConfig

    names = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "extra"]
    return ", ".join(names)


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``affectgpt train`` on ``subparsers``."""
    p = subparsers.add_parser("train", help="train one AffectGPT stage from manifests",
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              description=DESCRIPTION)
    p.add_argument("--preset", default=None,
                   help="model preset (paper, paper-llama2, qwen2.5-lora, small, tiny) or a "
                        "YAML model config file (default: small; for --stage rl the config "
                        "saved with the --init-from model)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="dotted model-config override, repeatable, e.g. --set video.layers=4 "
                        "--set llm.path=/models/vicuna-7b")
    p.add_argument("--stage", choices=("1", "2", "rl"), default="1",
                   help="1 or 2: supervised stage; names the run (stage1/stage2) and, with "
                        "--paper, picks the paper's iterations per epoch; rl: reinforcement "
                        "learning (GRPO) from the supervised --init-from model, see the 'rl' "
                        "options (default: %(default)s)")
    p.add_argument("--manifest", required=True, help="training manifest (JSONL/CSV)")
    p.add_argument("--split", dest="train_split", metavar="SPLIT",
                   help="train only on the --manifest samples whose split is SPLIT (e.g. "
                        "train, holding the test samples of a fine manifest out)")
    p.add_argument("--withhold", action="append", choices=("video", "audio"), default=[],
                   help="a modality the model never sees (training and evaluation), "
                        "repeatable: --withhold video --withhold audio trains the "
                        "subtitle-only baseline")
    p.add_argument("--eval-manifest",
                   help="manifest to describe and score during training (gold labels; its "
                        "split column gives the train/test scores)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, logs, model/)")
    p.add_argument("--init-from",
                   help="trainable weights to start from: a previous run folder (its model/), "
                        "a model folder or a checkpoint (ignored when resuming)")
    p.add_argument("--video-llama", metavar="PTH",
                   help="initialise the Q-Former branches from a Video-LLaMA/AffectGPT .pth")
    p.add_argument("--video-llama-allow-partial", action="store_true",
                   help="accept a --video-llama checkpoint that covers a branch only partly (the "
                        "uncovered parameters stay random; results.json lists the coverage)")
    p.add_argument("--resume", metavar="auto|PATH",
                   help="continue a run: 'auto' (the latest checkpoint in --out, if any) or "
                        "a checkpoint folder")
    p.add_argument("--paper", action="store_true",
                   help="start from the paper's schedule (batch 3, 100 epochs of 1000 / 88 "
                        "iterations, lr 3e-5 -> 1e-5, warm-up 1000) instead of the defaults")
    p.add_argument("--select-on", choices=("val", "test", "last"),
                   help="what chooses the exported checkpoint: val (default), test = best "
                        "epoch on test (paper protocol), last (same as --train select_on=...)")
    p.add_argument("--train-config", metavar="FILE",
                   help="YAML or JSON file of trainer settings (applied before --train)")
    p.add_argument("--train", action="append", default=[], metavar="KEY=VALUE",
                   dest="train_overrides",
                   help="trainer setting, repeatable, e.g. --train epochs=3 --train lr=1e-4 "
                        "--train eval_every=2 --train device=cuda. Keys: "
                        + _train_fields_help())
    g = p.add_argument_group("features")
    g.add_argument("--features-dir",
                   help="parent folder of the feature caches, one subfolder per encoder "
                        "(default: <manifest dir>/features)")
    g.add_argument("--no-cache", action="store_true",
                   help="compute features from the media at every use instead of caching")
    g.add_argument("--feature-workers", type=int, default=0,
                   help="decoding processes while building caches (default: %(default)s)")
    g.add_argument("--feature-dtype", choices=("float32", "float16", "bfloat16"),
                   default="float32", help="encoder precision (default: %(default)s)")
    g.add_argument("--skip-bad-media", action="store_true",
                   help="leave out (and list in results.json) clips that cannot be read "
                        "instead of stopping")
    e = p.add_argument_group("evaluation")
    e.add_argument("--eval-batch-size", type=int, default=4,
                   help="clips per generate call (default: %(default)s)")
    e.add_argument("--max-new-tokens", type=int, default=128,
                   help="longest description while evaluating (default: %(default)s)")
    e.add_argument("--grouping", choices=("lexical", "none"), default="lexical",
                   help="synonym grouping of the set metric (default: %(default)s)")
    e.add_argument("--extract", choices=("lexicon", "llm"), default="lexicon",
                   help="label extraction from the descriptions: the offline lexicon, or the "
                        "reference's LLM protocol through the --llm-* endpoint (default: "
                        "%(default)s; also the rl rewards' unless --reward-extract)")
    e.add_argument("--wheel-dir",
                   help="emotion-wheel tables (wheel1..5.xlsx, synonym.xlsx, format.csv): "
                        "the rl wheel reward and, with --stage rl, EW scores in the "
                        "evaluation (default: $AFFECTGPT_WHEEL_DIR)")
    _add_rl_options(p)
    add_llm_options(p)
    p.set_defaults(func=cmd_train)
    return p


def _add_rl_options(p: argparse.ArgumentParser) -> None:
    from affectgpt.eval.rewards import ANSWER_LAYOUTS, RewardSettings
    from affectgpt.train.grpo import GRPOConfig

    d, r = GRPOConfig(), RewardSettings()
    g = p.add_argument_group("rl", "reinforcement learning (--stage rl only)")
    g.add_argument("--group-size", type=int, default=d.group_size, metavar="G",
                   help="descriptions sampled per clip; rewards are normalised within these "
                        "G (default: %(default)s)")
    g.add_argument("--temperature", type=float, default=d.temperature,
                   help="sampling temperature of the G descriptions (default: %(default)s)")
    g.add_argument("--top-p", type=float, default=d.top_p,
                   help="nucleus sampling mass, 1 = off (default: %(default)s)")
    g.add_argument("--top-k", type=int, default=d.top_k,
                   help="sample among the k likeliest tokens, 0 = off (default: %(default)s)")
    g.add_argument("--rl-max-new-tokens", type=int, default=d.max_new_tokens,
                   help="longest sampled description in tokens; --max-new-tokens stays the "
                        "evaluation's (default: %(default)s)")
    g.add_argument("--clip-eps", type=float, default=d.clip_eps,
                   help="PPO clip range of the probability ratio (default: %(default)s)")
    g.add_argument("--kl-coef", type=float, default=d.kl_coef,
                   help="weight of the KL penalty to the frozen supervised model "
                        "(default: %(default)s)")
    g.add_argument("--updates-per-batch", type=int, default=d.updates_per_batch,
                   help="optimizer updates per sampled batch (1: plain policy gradient; "
                        ">1: the clipping matters) (default: %(default)s)")
    g.add_argument("--reward", default="wheel=1,length=1,gaming=1", metavar="NAME=W,...",
                   help="reward components and weights, summed: wheel (emotion-wheel "
                        "F-score, needs --wheel-dir), set (2024 set metric), format (ends "
                        "with a label list), length (penalty beyond --length-target words), "
                        "gaming (penalty for labels beyond --max-labels and near-duplicates) "
                        "(default: %(default)s)")
    g.add_argument("--reward-extract", choices=("lexicon", "answer", "llm"),
                   help="label extraction for the rewards: lexicon (offline), answer (the "
                        "label list a description ends with, or its <answer> with "
                        "--format-layout think-answer) or llm (the --llm-* endpoint, replies "
                        "cached in --llm-cache) (default: the --extract choice)")
    g.add_argument("--set-grouping", default=r.set_grouping, metavar="lexical|none|PATH",
                   help="synonym grouping of the set reward: lexical (offline), none, or "
                        "stored per-sample groupings (folder/zip of .npy, or JSON) "
                        "(default: %(default)s)")
    g.add_argument("--format-layout", choices=ANSWER_LAYOUTS, default=r.format_layout,
                   help="what the format reward (and --reward-extract answer) expects: a "
                        "description ending with a label list, or <think>..</think>"
                        "<answer>..</answer> (default: %(default)s)")
    g.add_argument("--length-target", type=int, default=r.length_target,
                   help="words a description may have before the length penalty (0.01 per "
                        "word beyond, at most 1) (default: %(default)s)")
    g.add_argument("--max-labels", type=int, default=r.max_labels,
                   help="labels a description may name before the gaming penalty (0.1 per "
                        "extra label and per duplicate, at most 1) (default: %(default)s)")


def reward_settings_from_args(args: argparse.Namespace):
    """The :class:`~affectgpt.eval.rewards.RewardSettings` of the rl options."""
    import os

    from affectgpt.eval.rewards import RewardSettings

    weights: dict[str, float] = {}
    for item in filter(None, (x.strip() for x in args.reward.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise TrainSettingsError(f"--reward takes NAME=WEIGHT items, got {item!r}")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise TrainSettingsError(f"--reward weight of {name.strip()!r} must be a number, "
                                     f"got {value!r}") from None
    unknown = sorted(set(weights) - set(RewardSettings.COMPONENTS))
    if unknown or not any(weights.values()):
        raise TrainSettingsError(f"--reward names components of "
                                 f"{list(RewardSettings.COMPONENTS)} with at least one "
                                 f"non-zero weight; got {args.reward!r}")
    wheel_dir = args.wheel_dir or os.environ.get("AFFECTGPT_WHEEL_DIR")
    if weights.get("wheel") and not wheel_dir:
        raise TrainSettingsError("the wheel reward needs the emotion-wheel tables: --wheel-dir "
                                 "DIR or $AFFECTGPT_WHEEL_DIR (or leave wheel out of --reward)")
    return RewardSettings(weights=weights, wheel_dir=wheel_dir, set_grouping=args.set_grouping,
                          format_layout=args.format_layout, length_target=args.length_target,
                          max_labels=args.max_labels)


def grpo_config_from_args(args: argparse.Namespace):
    """The :class:`~affectgpt.train.grpo.GRPOConfig` of the rl options."""
    from affectgpt.train.grpo import GRPOConfig

    try:
        return GRPOConfig(group_size=args.group_size, temperature=args.temperature,
                          top_p=args.top_p, top_k=args.top_k,
                          max_new_tokens=args.rl_max_new_tokens, clip_eps=args.clip_eps,
                          kl_coef=args.kl_coef, updates_per_batch=args.updates_per_batch)
    except ValueError as exc:
        raise TrainSettingsError(f"invalid rl settings: {exc}") from None


def train_config_from_args(args: argparse.Namespace):
    """The :class:`TrainConfig` of ``affectgpt train`` options."""
    from affectgpt.train.config import TrainConfig, apply_train_settings

    if args.stage == "rl":
        from affectgpt.train.grpo import grpo_train_config

        if args.paper:
            raise TrainSettingsError("--paper is the supervised schedule; the paper has no "
                                     "rl stage (set the rl trainer with --train)")
        base = grpo_train_config()
    else:
        base = TrainConfig.paper(args.stage) if args.paper else \
            TrainConfig(stage=f"stage{args.stage}")
    settings: dict[str, Any] = {}
    with errors_as(TrainSettingsError):
        if args.train_config:
            settings.update(read_mapping(args.train_config, "train config"))
        for item in args.train_overrides:
            key, value = parse_override(item)
            settings[key] = value
    if args.select_on:
        settings["select_on"] = args.select_on
    settings["out_dir"] = str(args.out)
    if args.init_from:
        settings["init_from"] = str(args.init_from)
    return apply_train_settings(base, settings)


def cmd_train(args: argparse.Namespace) -> int:
    from affectgpt.features.sources import FeatureSettings
    from affectgpt.train.pipeline import EvalSettings, train_stage

    logging_setup()
    train = train_config_from_args(args)
    features = FeatureSettings(cache=not args.no_cache, root=args.features_dir,
                               workers=args.feature_workers, dtype=args.feature_dtype,
                               skip_bad_media=args.skip_bad_media, progress=train.progress)
    llm = None
    if args.extract == "llm":
        llm = llm_config(args)
    evaluation = EvalSettings(batch_size=args.eval_batch_size,
                              max_new_tokens=args.max_new_tokens, grouping=args.grouping,
                              llm=llm)
    if args.stage == "rl":
        return _cmd_rl(args, train, features, evaluation)
    with local_server_scope(args, llm) if llm is not None else contextlib.nullcontext():
        result = train_stage(args.preset or "small", overrides=args.overrides, train=train,
                             manifest=args.manifest, eval_manifest=args.eval_manifest,
                             features=features, evaluation=evaluation,
                             video_llama=args.video_llama,
                             video_llama_allow_partial=args.video_llama_allow_partial,
                             resume=args.resume,
                             train_split=args.train_split, withhold=args.withhold)
    _print_result(result)
    return 0


def _cmd_rl(args: argparse.Namespace, train, features, evaluation) -> int:
    import os

    from affectgpt.train.rl_stage import rl_stage

    reward = reward_settings_from_args(args)
    grpo = grpo_config_from_args(args)
    extraction = args.reward_extract or args.extract
    llm = evaluation.llm
    if extraction == "llm" and llm is None:
        llm = llm_config(args)
    if not train.init_from and not args.resume:
        raise TrainSettingsError("--stage rl starts from the supervised model: give "
                                 "--init-from (the stage-2 run folder)")
    with local_server_scope(args, llm) if llm is not None else contextlib.nullcontext():
        result = rl_stage(args.preset, overrides=args.overrides, train=train,
                          manifest=args.manifest, eval_manifest=args.eval_manifest,
                          features=features, evaluation=evaluation, grpo=grpo, reward=reward,
                          extraction=extraction, llm=llm, resume=args.resume,
                          wheel_dir=args.wheel_dir or os.environ.get("AFFECTGPT_WHEEL_DIR"),
                          train_split=args.train_split, withhold=args.withhold)
    _print_result(result)
    rl = result.results["rl"]["last_epoch"] or {}
    shown = {k: round(v, 4) for k, v in rl.items() if k == "kl" or k.startswith("reward")}
    print(f"last epoch: {shown}")
    return 0


def _print_result(result) -> None:
    r = result.results
    steps = r["train"]["step"]
    line = f"{r['stage']}: {steps} steps in {r['timings']['total_s']:.1f} s"
    best = r["scores"]["selected"]
    if best:
        shown = {k: round(v, 4) for k, v in best.items() if k.endswith("/avg")}
        line += f"; scores {shown}"
    print(line + f" [checkpoint: {r['scores']['selection']}]")
    print(f"model: {result.model_dir}\nresults: {result.results_path}")


def logging_setup() -> None:
    """INFO messages of the trainer on stderr (once)."""
    import logging

    logger = logging.getLogger("affectgpt")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
