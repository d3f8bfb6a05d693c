"""``affectgpt infer`` (a manifest, resumable) and ``affectgpt describe`` (one file)."""

from __future__ import annotations

import argparse
import json

from affectgpt.cli.options import add_generation_options, load_model_from_args


def add_infer_parser(subparsers):
    """Register ``affectgpt infer``."""
    p = subparsers.add_parser(
        "infer", help="describe every clip of a manifest with a trained model (resumable)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Describe the clips of a manifest with a trained model and extract labels.

Writes OUT (CSV: name,description,openset) that `affectgpt evaluate --pred OUT` reads.
Next to it, OUT-stem.progress.jsonl gets one fsynced line per finished clip: an
interrupted run continues where it stopped (finished clips are skipped, none is written
twice). Clips whose media cannot be read are listed in OUT-stem.failures.jsonl and the
run goes on (a rerun retries them); a clip without an audio track is described from its
frames and subtitle.

Example:
  affectgpt infer --model runs/stage2/model --manifest fine/manifest.jsonl --split test \\
      --out runs/stage2/test-predictions.csv
  affectgpt evaluate --gold fine/manifest.jsonl --gold-column labels \\
      --pred runs/stage2/test-predictions.csv --split test""")
    add_generation_options(p, preset=False)
    p.add_argument("--manifest", required=True, help="manifest (JSONL/CSV) of the clips")
    p.add_argument("--split", help="only the samples whose split is this (train, test)")
    p.add_argument("--out", required=True, help="predictions CSV to write")
    p.add_argument("--batch-size", type=int, default=8,
                   help="clips per generate call (default: %(default)s)")
    p.add_argument("--language", choices=("en", "zh"), default="en",
                   help="subtitle language given to the model (default: %(default)s)")
    p.add_argument("--features-dir",
                   help="read (and complete) feature caches under this folder, one "
                        "subfolder per encoder; default: compute features from the media")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_infer)
    return p


def add_describe_parser(subparsers):
    """Register ``affectgpt describe``."""
    p = subparsers.add_parser(
        "describe", help="describe the emotional state of the person in one video",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Run the model's frozen encoders on one video (or audio) file, generate an
EMER-style description of the person's emotional state and extract its labels (offline
lexicon). A video without an audio track is described from its frames and subtitle.

Examples:
  affectgpt describe clip.mp4 --subtitle "I can't believe it!" --model runs/stage2/model
  affectgpt describe clip.mp4 --preset small --json     # untrained adapters""")
    p.add_argument("video", help="the media file")
    p.add_argument("--subtitle", default=None, help="what is said in the clip")
    add_generation_options(p, preset=True)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_describe)
    return p


def cmd_infer(args) -> int:
    from affectgpt.data.manifest import read_manifest
    from affectgpt.features.sources import FeatureSettings, default_cache_dirs
    from affectgpt.inference import InferenceInputError, run_inference

    samples = read_manifest(args.manifest)
    if args.split:
        samples = [s for s in samples if s.split == args.split]
        if not samples:
            raise InferenceInputError(f"no sample of {args.manifest} has split {args.split!r}")
    model = load_model_from_args(args)
    cache_dirs = (default_cache_dirs(model.config, root=args.features_dir)
                  if args.features_dir else None)
    summary = run_inference(
        model, samples, args.out, batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens, do_sample=args.sample, seed=args.seed,
        language=args.language,
        features=FeatureSettings(cache=bool(cache_dirs), progress=not args.quiet),
        cache_dirs=cache_dirs, progress=not args.quiet)
    print(f"{summary.total} clips: {summary.predicted} described, {summary.done_before} done "
          f"before, {summary.failed} failed ({summary.seconds:.1f} s) -> {summary.csv}"
          + (f"; failures in {summary.failures}" if summary.failed else ""))
    return 0


def cmd_describe(args) -> int:
    from affectgpt.inference import Describer

    result = Describer(load_model_from_args(args)).describe(args.video, args.subtitle, max_new_tokens=args.max_new_tokens,
                            do_sample=args.sample, seed=args.seed)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        streams = ", ".join(m for m, has in (("video", result.has_video),
                                              ("audio", result.has_audio)) if has)
        print(result.description)
        print(f"labels: {', '.join(result.labels) if result.labels else '(none)'}")
        print(f"({streams}; {result.seconds:.1f} s)")
    return 0
