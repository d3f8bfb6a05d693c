"""``affectgpt features`` (frozen-encoder caches) and ``affectgpt model-info``."""

from __future__ import annotations

import argparse
from pathlib import Path

from affectgpt.encoders.registry import ENCODERS


def add_parsers(sub) -> None:
    """Register ``features`` and ``model-info``."""
    fe = sub.add_parser(
        "features", help="run a frozen encoder once per clip into a resumable feature cache",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Run a frozen encoder once per clip of a manifest and store the features in
sharded safetensors files with the encoder's fingerprint (name, weight hash,
preprocessing, package version). Re-running skips finished clips (an interrupted run
loses at most one unwritten shard and never leaves a half-written one), retries failed
clips, and refuses a cache built with other weights or preprocessing. Clips that cannot
be read are listed in OUT/failures.jsonl.

Encoders:
""" + "\n".join(f"  {k:<18} {v}" for k, v in ENCODERS.items()))
    fe.add_argument("--manifest", required=True, help="manifest (JSONL/CSV) of the clips")
    fe.add_argument("--encoder", required=True, help="encoder name (see above)")
    fe.add_argument("--out", required=True, help="cache folder")
    fe.add_argument("--workers", type=int, default=2, help="decoding processes (default: %(default)s)")
    fe.add_argument("--shard-size", type=int, default=64, help="clips per shard (default: %(default)s)")
    fe.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32",
                    help="encoder precision (default: %(default)s; half precision pays off on GPUs)")
    fe.add_argument("--fresh", action="store_true", help="delete the cache's contents and start over")
    fe.set_defaults(func=cmd_features)

    mi = sub.add_parser(
        "model-info", help="print a model preset's full configuration and trainable parameters",
        description="Resolve a preset (paper, paper-llama2, qwen2.5-lora, small, tiny) or a YAML file "
                    "with dotted overrides, print the full configuration as YAML and the adapters' "
                    "parameter counts, without loading any LLM weights.")
    mi.add_argument("preset", nargs="?", default="small",
                    help="preset name or YAML config file (default: %(default)s)")
    mi.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="dotted override, repeatable (e.g. --set video.layers=4 --set lora.r=16)")
    mi.set_defaults(func=cmd_model_info)


def cmd_features(args: argparse.Namespace) -> int:
    from affectgpt.features.jobs import build_features

    summary = build_features(args.manifest, args.encoder, args.out, workers=args.workers,
                             shard_size=args.shard_size, fresh=args.fresh, dtype=args.dtype)
    print(f"{summary.total} clips: {summary.encoded} encoded, {summary.skipped} already cached, "
          f"{summary.failed} failed ({summary.seconds:.1f} s) -> {args.out}"
          + (f"; failures in {Path(args.out) / 'failures.jsonl'}" if summary.failed else ""))
    return 0


def cmd_model_info(args: argparse.Namespace) -> int:
    from affectgpt.model import load_config
    from affectgpt.model.affectgpt import count_adapter_parameters

    cfg = load_config(args.preset, args.set)
    print(cfg.to_yaml().rstrip())
    counts = count_adapter_parameters(cfg)
    print("# trainable adapter parameters (LoRA not included):")
    for key, value in counts.items():
        print(f"#   {key}: {value:,}")
    return 0
