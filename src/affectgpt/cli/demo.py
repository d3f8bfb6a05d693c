"""`affectgpt demo`: the argument parser and command."""

from __future__ import annotations

import argparse
import dataclasses
import textwrap

from affectgpt.demo.config import DemoConfig

DESCRIPTION = """\
The main job, on its embedded defaults (offline, no GPU; measured at 7 minutes on a quiet
2-core AVX-512 Xeon, so about 19 on a 2-core AVX2-only EPYC; on the Xeon modalities=true
adds about 3 minutes and rl=true about 12):

  1. a synthetic corpus: real mp4 clips (rendered faces, espeak-ng speech, subtitles) whose
     emotion cue lives in the video, the audio, the subtitle or all three; a coarse pool
     and a fine set with a seeded train/test split
  2. the coarse pool annotated by the EMER-Coarse pipeline with the packaged CPU models
     (prosody + facial-expression CNN clues merged by SmolLM2-135M-Instruct, lexicon
     labels), scored against the generator's truth
  3. frozen-encoder features of every clip cached (face-cnn, Whisper-base)
  4. the paper's Table 4 in miniature with the `small` preset: untrained, text only,
     stage 1 only, stage 2 only, stage 1 + stage 2, and a modality ablation (stage 2
     without video / audio); every trained system once per seed (seeds), its checkpoint
     chosen on a validation split carved from its training clips (select_on=test: best
     epoch on test, the paper protocol, labelled so), scored on the test split at that
     checkpoint with the 2024 set metric; mean ± std over the seeds and the paper's
     findings checked; optional (rl=true, off by default: it does not fit the time
     budget): GRPO after each seed's stage 1 + 2, its row "stage 1 + 2 + RL" (EW scores
     on test with rl_wheel_dir=DIR)
  5. one test clip described by the two-stage model
  6. OUT/demo-<time>/report.html and report.md: results table, per-modality ablation,
     loss and accuracy curves, the described clip with its frames, step timings

Finished steps are reused by a later run with the same settings (the work lives in
OUT/demo-work/<settings hash>/) unless --fresh; Ctrl-C leaves nothing corrupt and the next
run continues where it stopped.

"""
DESCRIPTION += textwrap.fill(
    "Settings (--set KEY=VALUE or a YAML --config): "
    + ", ".join(f.name for f in dataclasses.fields(DemoConfig))
    + " (see affectgpt.demo.DemoConfig).", width=88) + "\n"


def add_demo_parser(subparsers) -> argparse.ArgumentParser:
    de = subparsers.add_parser("demo", help="run the main job on its embedded defaults",
                               description=DESCRIPTION,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    de.add_argument("--out", default="runs",
                    help="parent folder of the report and work folders (default: %(default)s)")
    de.add_argument("--config", help="YAML file of demo settings (over the defaults)")
    de.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="demo setting, repeatable, e.g. --set fine=200 --set stage2_epochs=6 "
                         "--set 'overrides=[video.num_query=16]'")
    de.add_argument("--reduced", action="store_true",
                    help="the reduced demo (a few tiny clips, the tiny random LLM, one epoch per "
                         "stage; about a minute): checks the whole path, not the results")
    de.add_argument("--results-file", metavar="JSON",
                    help="also write the seeds' results there (make demo: "
                         "benchmarks/results/demo-cpu.json, the README table's source)")
    de.add_argument("--fresh", action="store_true",
                    help="delete this configuration's work folder and start over")
    de.add_argument("--no-progress", action="store_true", help="no progress bars")
    de.add_argument("--metrics-only", action="store_true",
                    help="instead: the seconds-long evaluation demo (synthetic descriptions, "
                         "verbatim vs lexical synonym grouping; no model)")
    de.set_defaults(func=cmd_demo)
    return de


def cmd_demo(args: argparse.Namespace) -> int:
    if args.metrics_only:
        from affectgpt.demo.metrics import run_demo as run_metrics_demo

        run_metrics_demo(out=args.out)
        return 0
    from affectgpt.demo import load_demo_config, run_demo

    cfg = load_demo_config(args.config, args.set, reduced=args.reduced)
    run_demo(cfg, args.out, fresh=args.fresh, progress=False if args.no_progress else None,
             results_file=args.results_file)
    return 0
