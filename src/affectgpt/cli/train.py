"""``affectgpt train``: one training stage from manifests (see :mod:`affectgpt.train.pipeline`)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from typing import Any

from affectgpt.cli.options import add_llm_options, llm_config, local_server_scope
from affectgpt.config import errors_as, parse_override, read_mapping
from affectgpt.train.config import TrainSettingsError

__all__ = ["TrainSettingsError", "add_train_parser", "cmd_train", "train_config_from_args"]



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
    p.add_argument("--preset", default="small",
                   help="model preset (paper, paper-llama2, qwen2.5-lora, small, tiny) or a "
                        "YAML model config file (default: %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="dotted model-config override, repeatable, e.g. --set video.layers=4 "
                        "--set llm.path=/models/vicuna-7b")
    p.add_argument("--stage", choices=("1", "2"), default="1",
                   help="stage number: names the run (stage1/stage2) and, with --paper, picks "
                        "the paper's iterations per epoch (default: %(default)s)")
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
                        "%(default)s)")
    add_llm_options(p)
    p.set_defaults(func=cmd_train)
    return p


def train_config_from_args(args: argparse.Namespace):
    """The :class:`TrainConfig` of ``affectgpt train`` options."""
    from affectgpt.train.config import TrainConfig, apply_train_settings

    base = TrainConfig.paper(args.stage) if args.paper else TrainConfig(stage=f"stage{args.stage}")
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
    with local_server_scope(args, llm) if llm is not None else contextlib.nullcontext():
        result = train_stage(args.preset, overrides=args.overrides, train=train,
                             manifest=args.manifest, eval_manifest=args.eval_manifest,
                             features=features, evaluation=evaluation,
                             video_llama=args.video_llama,
                             video_llama_allow_partial=args.video_llama_allow_partial,
                             resume=args.resume,
                             train_split=args.train_split, withhold=args.withhold)
    r = result.results
    steps = r["train"]["step"]
    line = f"{r['stage']}: {steps} steps in {r['timings']['total_s']:.1f} s"
    best = r["scores"]["selected"]
    if best:
        shown = {k: round(v, 4) for k, v in best.items() if k.endswith("/avg")}
        line += f"; scores {shown}"
    print(line + f" [checkpoint: {r['scores']['selection']}]")
    print(f"model: {result.model_dir}\nresults: {result.results_path}")
    return 0


def logging_setup() -> None:
    """INFO messages of the trainer on stderr (once)."""
    import logging

    logger = logging.getLogger("affectgpt")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
