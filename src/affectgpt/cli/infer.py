"""``affectgpt infer`` (a manifest, resumable) and ``affectgpt describe`` (one file)."""

from __future__ import annotations

import argparse

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
frames and subtitle. Clips without a subtitle get the transcript of their speech
(--asr, default; transcripts cached in OUT-stem.transcripts/, the manifest with them
written to OUT-stem.manifest.jsonl with subtitle_source=asr).

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
    from affectgpt.cli.asr import add_asr_options

    add_asr_options(p)
    p.set_defaults(func=cmd_infer)
    return p


AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".m4a", ".ogg", ".opus", ".aac")


def add_describe_parser(subparsers):
    """Register ``affectgpt describe``."""
    from affectgpt.cli.asr import add_asr_options
    from affectgpt.cli.options import add_llm_options

    p = subparsers.add_parser(
        "describe", help="describe the emotional state of the person in videos (zero-shot "
                         "with the packaged models, or a trained model)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Describe the emotional state of the person in one or more videos (or audio
files, or folders of them) and give emotion labels.

Without --model (zero-shot, no training needed): the speech is transcribed (packaged
Whisper-base), the main speaker's face is tracked and read by the packaged facial-
expression CNN, the words are scored against emotion prototypes by packaged sentence
encoders, prosody is measured; the clues are fused into labels and an LLM writes the
description around them -- the packaged SmolLM2-135M by default (it only writes; the
clues decide the labels), or any OpenAI-compatible server with --llm-base-url (a strong
model there also decides the labels; the result says when its labels contradict every
clue). A clip with no face says so. Clips up to --max-seconds (default 300).

With --model DIR: a trained AffectGPT model. --untrained-preset NAME: a preset with
random adapters (shows the pipeline only; its descriptions are noise).

Several inputs and --out FILE.csv|.jsonl write one row per clip (name,description,
openset,...) that `affectgpt evaluate --pred FILE` reads; a clip that cannot be read is
reported and the others go on.

Examples:
  affectgpt describe my_clip.mp4
  affectgpt describe clips/ --out descriptions.csv
  affectgpt describe clip.mp4 --llm-base-url http://localhost:8000/v1 --llm-model Qwen2.5-7B-Instruct
  affectgpt describe clip.mp4 --subtitle "I can't believe it!" --model runs/stage2/model""")
    p.add_argument("inputs", nargs="+", metavar="VIDEO",
                   help="media files or folders of them")
    p.add_argument("--subtitle", default=None,
                   help="what is said (one input only); default: transcribed from the speech")
    p.add_argument("--out", help="write every clip's result to this CSV or JSONL file")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--recursive", action="store_true", help="also search subfolders of folders")
    src = p.add_argument_group("model (default: zero-shot with the packaged models)")
    src.add_argument("--model", help="trained model folder (OUT/model of affectgpt train)")
    src.add_argument("--untrained-preset", metavar="NAME",
                     help="a model preset with untrained (random) adapters: the pipeline "
                          "only, its descriptions are noise (small, tiny, paper, ...)")
    src.add_argument("--preset", help=argparse.SUPPRESS)
    src.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     dest="overrides", help="model-config override (--model/--untrained-preset)")
    src.add_argument("--device", default="auto", help="cpu, cuda, auto (--model/--untrained-preset)")
    src.add_argument("--max-new-tokens", type=int, help="longest description in tokens (--model)")
    src.add_argument("--sample", action="store_true", help="sample instead of greedy (--model)")
    src.add_argument("--seed", type=int, default=0, help="sampling seed (default: %(default)s)")
    zs = p.add_argument_group("zero-shot")
    zs.add_argument("--no-llm", action="store_true",
                    help="no LLM: the description is made of the clue sentences")
    zs.add_argument("--decide", choices=("clues", "llm"),
                    help="who decides the labels: the fused clues (default with the packaged "
                         "LLM) or the LLM (default with --llm-base-url)")
    zs.add_argument("--max-seconds", type=float, default=300.0,
                    help="longest clip accepted (default: %(default)s)")
    zs.add_argument("--frames", type=int, default=8,
                    help="frames sampled for the face clue (default: %(default)s)")
    add_llm_options(p)
    p.set_defaults(llm_base_url=None)
    add_asr_options(p)
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
    samples = _transcribe_samples(samples, args)
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


def describe_inputs(inputs, *, recursive: bool = False) -> list[str]:
    """The media files named by ``inputs`` (files, or folders searched for video and audio
    files, sorted); raises ``FileNotFoundError`` for a missing one."""
    from pathlib import Path

    from affectgpt.data.importers import VIDEO_EXTENSIONS

    files: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            found = sorted(str(f) for f in path.glob(pattern)
                           if f.is_file() and not f.name.startswith(".")
                           and f.suffix.lower() in VIDEO_EXTENSIONS + AUDIO_EXTENSIONS)
            if not found:
                raise FileNotFoundError(f"no video or audio files in {path}")
            files += found
        elif path.is_file():
            files.append(str(path))
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return files


def _describer(args):
    """The describer the options name: trained, untrained preset, or zero-shot."""
    from affectgpt.inference import Describer, InferenceInputError, ZeroShotDescriber, load_model

    if args.preset and not args.untrained_preset:
        raise InferenceInputError(
            "--preset is now --untrained-preset (random adapters, the pipeline only); without "
            "--model, describe runs zero-shot on the packaged models")
    if args.model and args.untrained_preset:
        raise InferenceInputError("give --model or --untrained-preset, not both")
    if args.model or args.untrained_preset:
        if args.untrained_preset:
            import warnings

            warnings.warn(f"--untrained-preset {args.untrained_preset}: the adapters are "
                          "untrained (random); the description shows the pipeline, not a "
                          "trained model", stacklevel=2)
        return Describer(load_model(args.model, args.untrained_preset or "small",
                                    args.overrides, args.device))
    from affectgpt.cli.asr import transcriber_from_args

    llm = False if args.no_llm else None
    if args.llm_base_url and not args.no_llm:
        from affectgpt.cli.options import llm_config

        llm = llm_config(args)
    return ZeroShotDescriber(llm, asr=args.asr, transcriber=transcriber_from_args(args),
                             decide=args.decide, max_seconds=args.max_seconds,
                             n_frames=args.frames)


def _transcribe_for_model(args, path: str) -> tuple[str, str]:
    """Subtitle and its source for the trained-model describer (ASR unless given)."""
    if args.subtitle:
        return args.subtitle, "given"
    if not args.asr:
        return "", "none"
    from affectgpt.cli.asr import transcriber_from_args
    from affectgpt.encoders.asr import TranscriptCache, default_transcript_cache_dir

    if not hasattr(args, "_transcriber"):
        args._transcriber = transcriber_from_args(args)
    transcript = TranscriptCache(default_transcript_cache_dir()).transcribe(args._transcriber, path)
    return transcript.text, "asr"


def _result_row(result) -> dict:
    from pathlib import Path

    extra = result.extra or {}
    return {"name": Path(result.path).stem, "path": result.path,
            "description": result.description, "openset": list(result.labels),
            "subtitle": result.subtitle,
            "subtitle_source": extra.get("subtitle_source", ""),
            "labels_source": extra.get("labels_source", ""),
            "llm_contradicts_clues": extra.get("llm_contradicts_clues", False),
            "has_face": extra.get("has_face"), "seconds": result.seconds}


def write_describe_results(rows: list[dict], path: str) -> None:
    """``rows`` as CSV (``name,description,openset`` + provenance columns) or JSONL (the
    full results), by the file's suffix; ``affectgpt evaluate --pred`` reads both."""
    import csv
    import io
    import json

    from affectgpt.eval.labels import format_label_list
    from affectgpt.io import atomic_write

    if path.lower().endswith((".jsonl", ".json")):
        atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        return
    columns = ["name", "description", "openset", "subtitle", "subtitle_source",
               "labels_source", "llm_contradicts_clues", "has_face", "path", "error"]
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "openset": format_label_list(row.get("openset", []))})
    atomic_write(path, buffer.getvalue())


def _transcribe_samples(samples, args):
    """``infer``: clips without a subtitle get the transcript of their speech (``--asr``),
    cached in OUT-stem.transcripts/; the manifest with them is written to
    OUT-stem.manifest.jsonl (subtitle_source=asr)."""
    from pathlib import Path

    from affectgpt.cli.asr import fill_subtitles
    from affectgpt.data.manifest import write_manifest

    out = Path(args.out)
    stem = out.with_suffix("")
    filled = fill_subtitles(samples, args, stem.parent / f"{stem.name}.transcripts",
                            quiet=args.quiet)
    if any(a.subtitle_source != b.subtitle_source for a, b in zip(samples, filled)):
        out.parent.mkdir(parents=True, exist_ok=True)
        write_manifest(filled, stem.parent / f"{stem.name}.manifest.jsonl")
    return filled


def cmd_describe(args) -> int:
    from pathlib import Path

    from affectgpt.inference import InferenceInputError

    files = describe_inputs(args.inputs, recursive=args.recursive)
    if args.subtitle and len(files) > 1:
        raise InferenceInputError("--subtitle needs exactly one input")
    names = [Path(f).stem for f in files]
    if args.out and len(set(names)) != len(names):
        raise InferenceInputError("two inputs have the same file name; rows are named by it")
    import contextlib

    with contextlib.ExitStack() as stack:
        if getattr(args, "local_server", False) and not args.no_llm and not (
                args.model or args.untrained_preset):
            from affectgpt.llm.server import local_llm_server

            server = stack.enter_context(local_llm_server(max_batch=1))
            args.llm_base_url, args.llm_model, args.llm_api_key_env = \
                server.base_url, server.model, None
        return _describe_files(args, files)


def _describe_files(args, files) -> int:
    import json
    import sys
    from pathlib import Path

    from affectgpt.inference import InferenceInputError, ZeroShotDescriber
    from affectgpt.media import MediaError

    describer = _describer(args)
    rows, results, failed = [], [], 0
    for path in files:
        try:
            if isinstance(describer, ZeroShotDescriber):
                result = describer.describe(path, args.subtitle)
            else:
                subtitle, source = _transcribe_for_model(args, path)
                result = describer.describe(path, subtitle, max_new_tokens=args.max_new_tokens,
                                            do_sample=args.sample, seed=args.seed)
                result.extra["subtitle_source"] = source
        except (MediaError, FileNotFoundError, InferenceInputError) as exc:
            if len(files) == 1:
                raise
            failed += 1
            print(f"{path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            rows.append({"name": Path(path).stem, "path": path,
                         "description": "", "openset": [], "error": str(exc)})
            continue
        results.append(result)
        rows.append(_result_row(result))
        if not args.json:
            _print_result(result, several=len(files) > 1)
    if args.json:
        payload = [r.to_dict() for r in results]
        print(json.dumps(payload[0] if len(files) == 1 else payload, ensure_ascii=False,
                         indent=2))
    if args.out:
        write_describe_results(rows, args.out)
        print(f"{len(results)} described, {failed} failed -> {args.out}", file=sys.stderr)
    return 1 if failed and not results else 0


def _print_result(result, *, several: bool) -> None:
    extra = result.extra or {}
    if several:
        print(f"== {result.path}")
    print(result.description)
    print(f"labels: {', '.join(result.labels) if result.labels else '(none)'}"
          + (f" ({extra['labels_source']})" if extra.get("labels_source") else ""))
    if result.subtitle:
        print(f"speech ({extra.get('subtitle_source', 'given')}): {result.subtitle}")
    for name, clue in (extra.get("clues") or {}).items():
        print(f"  {name}: {clue['text']}")
    if extra.get("llm_contradicts_clues"):
        print("  note: the LLM's labels contradict every measured clue")
    streams = ", ".join(m for m, has in (("video", result.has_video),
                                          ("audio", result.has_audio)) if has)
    timing = extra.get("timings")
    steps = (" (" + ", ".join(f"{k} {v:.1f}" for k, v in timing.items()) + ")") if timing else ""
    print(f"({streams}; {result.seconds:.1f} s{steps})")
