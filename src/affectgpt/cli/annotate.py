"""``affectgpt annotate``: run, retry-failed, export, status, config."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

from affectgpt.annotate.config import STAGES

DESCRIPTION = """Annotate a collection of videos with emotion descriptions, no human in the loop
(the EMER-Coarse pipeline of the AffectGPT paper, section 3):

  audio-clue  an audio model describes the emotional clues in the voice
  video-clue  a video model describes the emotional clues in the face and body
  merge       a text LLM merges both clues and the subtitle into one reasoned
              description ("disambiguation")
  translate   English <-> Chinese
  labels      the main character's emotion labels, from the description
  filter      drop rows without labels, too short, or whose clues contradict

Every stage appends one row per sample to OUT/<stage>.jsonl (with the prompt, model and
parameters used) and failures to OUT/<stage>.failures.jsonl; re-running resumes where it
stopped (kill -9 included) and never writes a sample twice. Start with
`affectgpt annotate config > annotate.yaml`, edit the models and servers, then:

  affectgpt annotate run --manifest semi.jsonl --out annot/ --config annotate.yaml
  affectgpt annotate retry-failed --manifest semi.jsonl --out annot/ --config annotate.yaml
  affectgpt annotate export --out annot/ --manifest-out coarse.jsonl --csv emer-coarse.csv"""


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True, help="manifest (JSONL/CSV) of the collection, "
                                                     "e.g. from `affectgpt import-videos`")
    p.add_argument("--out", required=True, help="output folder (created; reused to resume)")
    _add_config_options(p)
    p.add_argument("--stages", help="comma-separated stages to run now (default: every enabled "
                                    "stage); an enabled stage left out must already have rows "
                                    "for the stages after it")
    p.add_argument("--shard", metavar="K/N",
                   help="process only shard K of N (0 <= K < N), by a stable hash of the sample "
                        "name: N machines or servers split a collection with no coordination")
    p.add_argument("--limit", type=int, help="only the first LIMIT samples (of the shard)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--local-server", action="store_true",
                   help="start the packaged SmolLM2-135M-Instruct behind `affectgpt serve-llm` "
                        "on loopback (batching up to --concurrency requests) for the openai text "
                        "stages (merge, translate, labels): for trying the pipeline offline, far "
                        "too small for real annotations")
    from affectgpt.cli.asr import add_asr_options

    add_asr_options(p)  # samples without subtitles: OUT/manifest.asr.jsonl, OUT/transcripts


def _add_config_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML configuration (see `affectgpt annotate config`); "
                                    "unset keys keep their defaults")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override, repeatable: STAGE.SETTING=VALUE (e.g. merge.max_tokens=256, "
                        "audio-clue.backend=packaged, video-clue.enabled=false), "
                        "*.SETTING=VALUE for every stage, concurrency=N, cache=PATH")
    p.add_argument("--llm-base-url", help="base URL (ending in /v1) for every stage on the "
                                          "openai back-end")
    p.add_argument("--llm-model", help="model name for every stage on the openai back-end")
    p.add_argument("--allow-insecure-api-key", action="store_true",
                   help="send API keys over plain http to hosts that are not loopback (by default "
                        "a key goes only to https endpoints and to this machine)")
    p.add_argument("--concurrency", type=int, help="requests in flight per stage (default: "
                                                   "the config's, 4)")
    p.add_argument("--cache", help="sqlite reply cache for openai stages (default: none; the "
                                   "stage files already record every answer)")


def add_annotate_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``annotate`` verb and its subcommands to the top-level parser."""
    an = subparsers.add_parser("annotate", help="the EMER-Coarse annotation pipeline: videos -> "
                                                "clues -> descriptions -> labels",
                               formatter_class=argparse.RawDescriptionHelpFormatter,
                               description=DESCRIPTION)
    sub = an.add_subparsers(dest="annotate_cmd", metavar="<command>")

    run = sub.add_parser("run", help="run (or resume) the pipeline over a manifest",
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         description="Run the enabled stages over the manifest, resuming "
                                     "where an earlier run stopped. Samples that failed before "
                                     "are left alone unless --retry-failed. Prints and writes "
                                     "OUT/summary[.K-of-N].json (done, failed, tokens, time). "
                                     "Exit status 1 when a sample failed in this run.")
    _add_run_options(run)
    run.add_argument("--retry-failed", action="store_true",
                     help="also retry samples whose earlier attempt failed")
    run.set_defaults(annotate_func=cmd_run, only_failed=False)

    retry = sub.add_parser("retry-failed", help="retry only the samples that failed",
                           description="Run again only the samples with an open failure "
                                       "(a failure row and no output row) in each stage.")
    _add_run_options(retry)
    retry.set_defaults(annotate_func=cmd_run, only_failed=True, retry_failed=True)

    ex = sub.add_parser("export", help="write the training manifest and the EMER-Coarse CSV",
                        description="Export every sample that has a merge row, a labels and "
                                    "translate row when those stages are enabled, and that the "
                                    "filter kept: a manifest (description_en/zh, labels, clues "
                                    "and provenance in extra) and/or a CSV name,english,"
                                    "chinese,openset.")
    ex.add_argument("--out", required=True, help="the annotation output folder")
    ex.add_argument("--manifest-out", help="manifest to write (.jsonl or .csv)")
    ex.add_argument("--csv", help="EMER-Coarse-style CSV to write (name,english,chinese,openset)")
    ex.add_argument("--source-manifest", help="input manifest (default: the one the run used)")
    ex.add_argument("--allow-missing", default="",
                    help="comma-separated stages whose rows may be missing (translate, labels): "
                         "such samples are exported with an empty text / label list")
    ex.set_defaults(annotate_func=cmd_export)

    st = sub.add_parser("status", help="rows and open failures per stage",
                        description="Count the rows and open failures of every stage (all "
                                    "shards' files) in an output folder.")
    st.add_argument("--out", required=True, help="the annotation output folder")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(annotate_func=cmd_status)

    co = sub.add_parser("config", help="print the resolved configuration as YAML",
                        description="Print the default configuration (or --config with "
                                    "overrides) as YAML: a starting point to edit.")
    _add_config_options(co)
    co.set_defaults(annotate_func=cmd_config)
    def dispatch(args: argparse.Namespace) -> int:
        if getattr(args, "annotate_func", None) is None:
            an.print_help()
            return 2
        from affectgpt.annotate.config import AnnotateConfigError
        from affectgpt.annotate.store import StoreError

        try:
            return args.annotate_func(args)
        except (AnnotateConfigError, StoreError, KeyError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            print(f"affectgpt annotate: error: {message}", file=sys.stderr)
            return 2

    an.set_defaults(func=dispatch)
    return an


def resolve_config(args: argparse.Namespace):
    """The configuration from --config, --set and the shortcut options."""
    from affectgpt.annotate.config import apply_overrides, load_config

    cfg = load_config(args.config)
    overrides = list(args.set)
    for stage in STAGES:
        if cfg.stages[stage].backend == "openai":
            if args.llm_base_url:
                overrides.append(f"{stage}.base_url={args.llm_base_url}")
            if args.llm_model:
                overrides.append(f"{stage}.model={args.llm_model}")
            if getattr(args, "allow_insecure_api_key", False):
                overrides.append(f"{stage}.allow_insecure_api_key=true")
    if args.concurrency is not None:
        overrides.append(f"concurrency={args.concurrency}")
    if args.cache:
        overrides.append(f"cache={args.cache}")
    return apply_overrides(cfg, overrides) if overrides else cfg


def cmd_run(args: argparse.Namespace) -> int:
    from affectgpt.annotate.runner import parse_shard, run_annotation

    cfg = resolve_config(args)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else None
    shard = parse_shard(args.shard)
    with contextlib.ExitStack() as stack:
        if args.local_server:
            from affectgpt.llm.server import local_llm_server

            server = stack.enter_context(local_llm_server(max_batch=cfg.concurrency))
            for name in ("merge", "translate", "labels"):
                if cfg.stages[name].backend == "openai":
                    cfg.stages[name].base_url, cfg.stages[name].model = server.base_url, server.model
                    cfg.stages[name].api_key_env = None
        summary = run_annotation(_transcribed_manifest(args), args.out, cfg, stages=stages, shard=shard,
                                 limit=args.limit, retry_failed=args.retry_failed,
                                 only_failed=args.only_failed, progress=not args.no_progress)
    return 1 if summary.failed else 0


def _transcribed_manifest(args: argparse.Namespace) -> str:
    """``--manifest``, or, when some of its samples have no subtitle and ``--asr`` is on,
    OUT/manifest.asr.jsonl: the same samples with the transcripts of their speech
    (subtitle_source=asr; transcripts cached in OUT/transcripts, so a resumed run writes
    the same file)."""
    from pathlib import Path

    from affectgpt.cli.asr import fill_subtitles
    from affectgpt.data.manifest import read_manifest, write_manifest

    samples = read_manifest(args.manifest)
    filled = fill_subtitles(samples, args, Path(args.out) / "transcripts",
                            quiet=args.no_progress)
    if all(a.subtitle_source == b.subtitle_source for a, b in zip(samples, filled)):
        return args.manifest
    target = Path(args.out) / "manifest.asr.jsonl"
    write_manifest(filled, target)
    return str(target)


def cmd_export(args: argparse.Namespace) -> int:
    from affectgpt.annotate.export import export_dataset

    if not args.manifest_out and not args.csv:
        print("affectgpt annotate export: nothing to write; give --manifest-out and/or --csv",
              file=sys.stderr)
        return 2
    allow = tuple(s.strip() for s in args.allow_missing.split(",") if s.strip())
    summary = export_dataset(args.out, manifest_out=args.manifest_out, csv_out=args.csv,
                             source_manifest=args.source_manifest, allow_missing=allow)
    skipped = ", ".join(f"{n} {why}" for why, n in summary.skipped.items()) or "none"
    print(f"exported {summary.exported} samples (skipped: {skipped})"
          + (f" -> {summary.manifest}" if summary.manifest else "")
          + (f" -> {summary.csv}" if summary.csv else ""))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from affectgpt.annotate.runner import run_status

    status = run_status(args.out)
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        for stage, counts in status.items():
            print(f"{stage:<11} {counts['rows']:>8} rows {counts['open_failures']:>6} open failures")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    print(resolve_config(args).to_yaml().rstrip())
    return 0
