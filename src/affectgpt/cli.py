"""The ``affectgpt`` command: ``affectgpt <verb> --help`` explains every option."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from affectgpt import __version__

LLM_HELP = """LLM endpoint options (any OpenAI-compatible chat server: vLLM, llama.cpp server,
`transformers serve`, hosted APIs). Replies are cached on disk, keyed by model, prompt
version and request, so a rerun makes no server calls."""


def _add_llm_options(parser: argparse.ArgumentParser) -> None:
    from affectgpt.eval.runner import LLMConfig

    d = LLMConfig()
    g = parser.add_argument_group("LLM", LLM_HELP)
    g.add_argument("--llm-base-url", default=d.base_url,
                   help="base URL of the OpenAI-compatible API, ending in /v1 (default: %(default)s)")
    g.add_argument("--llm-model", default=d.model,
                   help="model name sent with each request (default: %(default)s, the paper's)")
    g.add_argument("--llm-api-key-env", default=d.api_key_env,
                   help="environment variable holding the API key; may be unset for local servers "
                        "(default: %(default)s)")
    g.add_argument("--llm-concurrency", type=int, default=d.concurrency,
                   help="requests in flight at once (default: %(default)s)")
    g.add_argument("--llm-timeout", type=float, default=d.timeout,
                   help="seconds before one request times out (default: %(default)s)")
    g.add_argument("--llm-max-retries", type=int, default=d.max_retries,
                   help="retries with exponential backoff on timeouts, 429 and 5xx (default: %(default)s)")
    g.add_argument("--llm-max-attempts", type=int, default=d.max_attempts,
                   help="attempts per sample when the reply is invalid; each retry tells the model what "
                        "was wrong; after the last the sample is recorded as failed (default: %(default)s)")
    g.add_argument("--llm-max-tokens", type=int, default=d.max_tokens,
                   help="longest reply in tokens (default: %(default)s)")
    g.add_argument("--llm-cache", default=d.cache,
                   help="sqlite reply cache (default: $AFFECTGPT_CACHE/llm-cache.sqlite, "
                        "$AFFECTGPT_CACHE defaulting to ~/.cache/affectgpt)")
    g.add_argument("--local-server", action="store_true",
                   help="start the packaged SmolLM2-135M-Instruct behind `affectgpt serve-llm` on "
                        "loopback (batching --llm-concurrency requests) and use it (offline; for "
                        "trying the pipeline, not for paper numbers)")


def _llm_config(args: argparse.Namespace):
    from affectgpt.eval.runner import LLMConfig

    return LLMConfig(base_url=args.llm_base_url, model=args.llm_model, api_key_env=args.llm_api_key_env,
                     concurrency=args.llm_concurrency, timeout=args.llm_timeout,
                     max_retries=args.llm_max_retries, max_attempts=args.llm_max_attempts,
                     max_tokens=args.llm_max_tokens, cache=args.llm_cache)


class _LocalServerScope:
    """Start the packaged local model server for the duration of a command when asked."""

    def __init__(self, args: argparse.Namespace, llm):
        self.args, self.llm, self.server = args, llm, None

    def __enter__(self):
        if getattr(self.args, "local_server", False):
            from affectgpt.llm.server import LocalModelServer, export_smollm2

            batch = str(max(1, self.llm.concurrency))
            self.server = LocalModelServer(export_smollm2(), engine="affectgpt",
                                           extra_args=["--max-batch", batch])
            self.server.__enter__()
            self.llm.base_url, self.llm.model = self.server.base_url, self.server.model
        return self.llm

    def __exit__(self, *exc):
        if self.server is not None:
            self.server.__exit__(*exc)


def _register(module: str, function: str, subparsers) -> None:
    """Add the verb that ``module.function(subparsers)`` defines."""
    import importlib

    getattr(importlib.import_module(module), function)(subparsers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="affectgpt",
        description="Explainable multimodal emotion recognition (AffectGPT): evaluation, label "
                    "extraction, datasets and synthetic corpora, frozen-encoder feature caches.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"affectgpt {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="<verb>")

    # ------------------------------------------------------------------ evaluate
    ev = sub.add_parser(
        "evaluate", help="score open-vocabulary emotion predictions like the papers",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Score open-vocabulary emotion predictions against gold labels.

Metrics:
  set        the 2024 AffectGPT/MER2024 metric: per-sample synonym grouping, then set
             Accuracy_s (precision), Recall_s and Avg = their mean (paper eq. 1-3)
  wheel      the 2025 emotion-wheel metrics: M1, M2 and M3 on 5 wheels x 2 levels
             (12 F-scores), M-avg (their mean) and EW-L1 (AffectGPT-2025's score)
  hitrate    single-label datasets (MER2023, MELD, IEMOCAP): share of samples whose
             wheel-mapped gold label is among the wheel-mapped predictions, 5-wheel mean
  sentiment  sentiment datasets (MOSI, MOSEI, SIMS): predicted labels -> polarity,
             weighted F1 of (gold > 0) vs (pred > 0), samples with gold == 0 dropped

Several --pred files (e.g. repeated runs) give one row each and a mean±std row
(population std), as in the papers' tables. Scores are printed x100.

Example (reproduces MERTools' stored result 0.5397841365461847):
  affectgpt evaluate --gold check-openset.csv --pred predict-openset.csv \\
      --grouping stored:openset-synonym.zip""")
    ev.add_argument("--gold", required=True, help="gold labels: CSV/TSV/JSONL/JSON with a name column")
    ev.add_argument("--pred", required=True, action="append", dest="preds", metavar="PRED",
                    help="predicted labels (same formats); repeat for several runs")
    ev.add_argument("--metric", choices=("set", "wheel", "hitrate", "sentiment"), default="set",
                    help="which metric (default: %(default)s)")
    ev.add_argument("--grouping", default="lexical",
                    help="synonym grouping for --metric set: 'stored:PATH' (directory or zip of the "
                         "reference's per-sample .npy files, or JSON {name: [[...]]}), 'llm' (the paper's "
                         "GPT grouping prompt through --llm-* options), 'lexical' (offline WordNet/cilin "
                         "grouping; no server) or 'none' (default: %(default)s)")
    ev.add_argument("--label-syntax", choices=("auto", "python", "mertools"), default="auto",
                    help="how label lists are split: 'python' respects quotes (\"don't believe\" is one "
                         "label); 'mertools' splits at every quote and comma like the reference code, "
                         "which its stored groupings need; 'auto' uses mertools with stored .npy "
                         "groupings and python otherwise (default: %(default)s)")
    ev.add_argument("--gold-column", default="openset",
                    help="gold column: a label list; for hitrate one label; for sentiment a number "
                         "(default: %(default)s)")
    ev.add_argument("--pred-column", default="openset", help="prediction column (default: %(default)s)")
    ev.add_argument("--name-column", default="name", help="sample-name column (default: %(default)s)")
    ev.add_argument("--names", help="evaluate only these samples: a text file with one name per line, "
                                    "or a CSV with name (and split) columns")
    ev.add_argument("--split", help="keep samples whose split column (in the --names CSV, else in the "
                                    "gold file) equals this: train, test, or whole (all)")
    ev.add_argument("--wheel-dir", help="emotion-wheel tables (wheel1..5.xlsx, synonym.xlsx, format.csv); "
                                        "default: $AFFECTGPT_WHEEL_DIR")
    ev.add_argument("--lexical-wheel", action="store_true",
                    help="with --grouping lexical: also use the emotion-wheel synonym tables")
    ev.add_argument("--allow-missing", action="store_true",
                    help="score samples missing from a prediction file as empty predictions (0/0) "
                         "instead of stopping with an error")
    ev.add_argument("--encoding", help="text encoding of the input files (default: UTF-8, BOM allowed)")
    ev.add_argument("--output", "-o", help="write the results (per-sample scores included) as JSON")
    _add_llm_options(ev)
    ev.set_defaults(func=cmd_evaluate)

    # ------------------------------------------------------------ extract-labels
    ex = sub.add_parser(
        "extract-labels", help="turn free-text emotion descriptions into label lists",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Extract open-vocabulary emotion labels from descriptions (CSV/TSV/JSONL/JSON).

Methods:
  llm      the reference protocol: an LLM lists the main character's clearly identifiable
           emotional states (temperature 0, cached, validated, corrective retries)
  lexicon  offline: the main character's emotion words found in the text (a WordNet
           feelings vocabulary), negated mentions and other people's emotions skipped

Writes a CSV with columns name,openset that `affectgpt evaluate --pred` reads, and a
failures JSONL next to it for samples the LLM could not answer validly.""")
    ex.add_argument("--input", required=True, help="descriptions file")
    ex.add_argument("--output", "-o", required=True, help="output CSV (name,openset)")
    ex.add_argument("--text-column", default="english", help="description column (default: %(default)s)")
    ex.add_argument("--name-column", default="name", help="sample-name column (default: %(default)s)")
    ex.add_argument("--method", choices=("llm", "lexicon"), default="lexicon",
                    help="extraction method (default: %(default)s)")
    ex.add_argument("--encoding", help="text encoding of the input (default: UTF-8)")
    _add_llm_options(ex)
    ex.set_defaults(func=cmd_extract_labels)

    # ------------------------------------------------------------------ data
    ms = sub.add_parser(
        "make-synthetic", help="write a synthetic corpus of real mp4 clips with gold labels",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Generate synthetic emotion clips: rendered faces whose expression varies, espeak-ng
speech whose words and prosody vary, subtitles, EMER-style gold descriptions and labels.
The emotion cue is placed in one modality (--cue): the others stay neutral, so a model
must read that modality to recover the label. Deterministic for a seed; re-running
skips complete clips. Writes DIR/videos/*.mp4, DIR/manifest.jsonl, DIR/synthetic.json.

With --coarse/--fine it writes a two-stage corpus instead (like EMER-Coarse +
EMER-Fine): DIR/coarse/manifest.jsonl and DIR/fine/manifest.jsonl with a seeded
train/test split in DIR/fine/split.csv.""")
    ms.add_argument("--out", required=True, help="output folder")
    ms.add_argument("--n", type=int, default=100, help="number of clips (default: %(default)s)")
    ms.add_argument("--cue", choices=("video", "audio", "text", "all", "mixed"), default="all",
                    help="modality carrying the emotion; 'mixed' rotates the four (default: %(default)s)")
    ms.add_argument("--emotions", help="comma-separated emotions (default: neutral, happy, sad, angry, "
                                       "surprised, worried, disgusted)")
    ms.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    ms.add_argument("--duration", type=float, nargs=2, default=(3.0, 6.0), metavar=("MIN", "MAX"),
                    help="clip length range in seconds (default: 3 6)")
    ms.add_argument("--size", type=int, default=224, help="frame size in pixels (default: %(default)s)")
    ms.add_argument("--fps", type=int, default=10, help="frames per second (default: %(default)s)")
    ms.add_argument("--split", help="split value written into every sample (e.g. train)")
    ms.add_argument("--style", choices=("fine", "coarse"), default="fine",
                    help="description style: full EMER-like or short coarse (default: %(default)s)")
    ms.add_argument("--workers", type=int, help="generation processes (default: CPU count)")
    ms.add_argument("--coarse", type=int, help="two-stage corpus: clips in the coarse pool")
    ms.add_argument("--fine", type=int, help="two-stage corpus: clips in the fine set")
    ms.add_argument("--test-fraction", type=float, default=0.2,
                    help="two-stage corpus: share of the fine set held out as test (default: %(default)s)")
    ms.set_defaults(func=cmd_make_synthetic)

    ie = sub.add_parser("import-emer", help="EMER-Fine release files -> manifest (+ seeded split)",
                        description="Build a manifest from EMER-Fine's final-EMER-reason.csv (gold "
                                    "descriptions), the gold label CSV and optionally subtitles.csv and "
                                    "a folder of the MER videos (under their EULA; missing videos allowed).")
    ie.add_argument("--reason", required=True, help="final-EMER-reason.csv (name,chinese,english)")
    ie.add_argument("--labels", required=True, help="gold labels CSV (name,openset), e.g. check-openset.csv")
    ie.add_argument("--subtitles", help="subtitles.csv (name,chinese,english)")
    ie.add_argument("--video-dir", help="folder holding <name>.mp4/.avi/...")
    ie.add_argument("--out", required=True, help="manifest to write (.jsonl or .csv)")
    ie.add_argument("--split-out", help="also write a seeded 266/66 train/test split CSV here and "
                                        "store the split in the manifest")
    ie.add_argument("--split-seed", type=int, default=0, help="split seed (default: %(default)s)")
    ie.set_defaults(func=cmd_import_emer)

    iv = sub.add_parser("import-videos", help="a folder of videos (+ subtitle CSV) -> manifest",
                        description="One sample per video, named by file stem; subtitles from a "
                                    "MER2024-layout CSV (name,chinese,english).")
    iv.add_argument("--video-dir", required=True, help="folder of videos")
    iv.add_argument("--subtitles", help="subtitle CSV (name,chinese,english)")
    iv.add_argument("--recursive", action="store_true", help="also search subfolders")
    iv.add_argument("--out", required=True, help="manifest to write (.jsonl or .csv)")
    iv.set_defaults(func=cmd_import_videos)

    sp = sub.add_parser("split", help="seeded train/test split of a manifest, written down",
                        description="Assign each sample to train or test from a hash of (seed, name): "
                                    "independent of order and platform. Writes name,split CSV plus a "
                                    "<file>.meta.json sidecar (seed, sizes, digest of the names).")
    sp.add_argument("--manifest", required=True, help="manifest to split")
    sp.add_argument("--test-size", required=True, type=float,
                    help="test samples: a count (66) or a fraction (0.2)")
    sp.add_argument("--seed", type=int, default=0, help="split seed (default: %(default)s)")
    sp.add_argument("--out", required=True, help="split CSV to write")
    sp.add_argument("--apply-to", help="also write the manifest with the split filled in here")
    sp.set_defaults(func=cmd_split)

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
""" + "\n".join(f"  {k:<18} {v}" for k, v in _audio_encoders().items()))
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

    _register("affectgpt.demo.cli", "add_demo_parser", sub)  # affectgpt demo
    _register("affectgpt.train.cli", "add_train_parser", sub)  # affectgpt train
    _register("affectgpt.inference", "add_infer_parser", sub)  # affectgpt infer
    _register("affectgpt.inference", "add_describe_parser", sub)  # affectgpt describe
    _register("affectgpt.annotate.cli", "add_annotate_parser", sub)  # affectgpt annotate
    _register("affectgpt.report.web", "add_serve_demo_parser", sub)  # affectgpt serve-demo
    _register("affectgpt.llm.serve", "add_serve_llm_parser", sub)  # affectgpt serve-llm
    return parser


def cmd_evaluate(args: argparse.Namespace) -> int:
    from affectgpt.eval.runner import EvalConfig, run_evaluation

    llm = _llm_config(args)
    cfg = EvalConfig(gold=args.gold, preds=args.preds, metric=args.metric, grouping=args.grouping,
                     label_syntax=args.label_syntax, gold_column=args.gold_column,
                     pred_column=args.pred_column, name_column=args.name_column, names=args.names,
                     split=args.split, wheel_dir=args.wheel_dir, lexical_wheel=args.lexical_wheel,
                     allow_missing=args.allow_missing, encoding=args.encoding, output=args.output, llm=llm)
    with _LocalServerScope(args, llm):
        run_evaluation(cfg)
    return 0


def cmd_extract_labels(args: argparse.Namespace) -> int:
    from affectgpt.eval.extract import extract_labels_file

    llm = _llm_config(args)
    with _LocalServerScope(args, llm):
        extract_labels_file(args.input, args.output, method=args.method, text_column=args.text_column,
                            name_column=args.name_column, encoding=args.encoding, llm=llm)
    return 0


def cmd_make_synthetic(args: argparse.Namespace) -> int:
    from affectgpt.data.synthetic import DEFAULT_EMOTIONS, make_synthetic, make_synthetic_corpus

    emotions = tuple(e.strip() for e in args.emotions.split(",")) if args.emotions else DEFAULT_EMOTIONS
    common = dict(emotions=emotions, seed=args.seed, duration=tuple(args.duration), size=args.size,
                  fps=args.fps, workers=args.workers)
    if args.coarse is not None or args.fine is not None:
        corpus = make_synthetic_corpus(args.out, coarse=args.coarse or 0, fine=args.fine or 0,
                                       test_fraction=args.test_fraction, **common)
        print(f"coarse: {corpus.coarse_manifest} ({len(corpus.coarse)} clips)\n"
              f"fine:   {corpus.fine_manifest} ({len(corpus.fine)} clips), split {corpus.split_file}")
    else:
        samples = make_synthetic(args.out, args.n, cue=args.cue, split=args.split, style=args.style, **common)
        print(f"{len(samples)} clips; manifest {Path(args.out) / 'manifest.jsonl'}")
    return 0


def cmd_import_emer(args: argparse.Namespace) -> int:
    from affectgpt.data.importers import import_emer_fine
    from affectgpt.data.manifest import media_report, write_manifest
    from affectgpt.data.splits import apply_split, emer_fine_split, write_split

    samples = import_emer_fine(args.reason, args.labels, args.subtitles, args.video_dir)
    if args.split_out:
        assignment = emer_fine_split([s.name for s in samples], seed=args.split_seed)
        write_split(args.split_out, assignment, args.split_seed, test_size=66, source=str(args.reason))
        samples = apply_split(samples, assignment)
    write_manifest(samples, args.out)
    print(f"wrote {args.out}: {media_report(samples)}")
    return 0


def cmd_import_videos(args: argparse.Namespace) -> int:
    from affectgpt.data.importers import import_video_folder
    from affectgpt.data.manifest import media_report, write_manifest

    samples = import_video_folder(args.video_dir, args.subtitles, recursive=args.recursive)
    write_manifest(samples, args.out)
    print(f"wrote {args.out}: {media_report(samples)}")
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    from affectgpt.data.manifest import read_manifest, write_manifest
    from affectgpt.data.splits import apply_split, seeded_split, split_sizes, write_split

    samples = read_manifest(args.manifest)
    size = int(args.test_size) if args.test_size >= 1 else args.test_size
    assignment = seeded_split([s.name for s in samples], size, args.seed)
    write_split(args.out, assignment, args.seed, test_size=size, source=str(args.manifest))
    if args.apply_to:
        write_manifest(apply_split(samples, assignment), args.apply_to)
    print(f"wrote {args.out}: {split_sizes(assignment)}")
    return 0


def _audio_encoders() -> dict[str, str]:
    from affectgpt.features.jobs import ENCODERS

    return ENCODERS


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


def _domain_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input or a missing tool: printed as one line, exit status 2."""
    from affectgpt.data.speech import SpeechError
    from affectgpt.demo.config import DemoConfigError
    from affectgpt.features.cache import FeatureCacheMismatch
    from affectgpt.inference import domain_errors as inference_errors  # train/infer/describe
    from affectgpt.llm.client import LLMError
    from affectgpt.model.config import ConfigError

    return (SpeechError, FeatureCacheMismatch, LLMError, ConfigError, DemoConfigError,
            *inference_errors())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from affectgpt.eval.labels import LabelFormatError
    from affectgpt.eval.set_metric import EvaluationInputError

    try:
        return args.func(args)
    except (LabelFormatError, EvaluationInputError, FileNotFoundError, *_domain_errors()) as exc:
        print(f"affectgpt {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"affectgpt {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
