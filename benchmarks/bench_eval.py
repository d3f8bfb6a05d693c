"""Evaluation speed: 332 MER2024-OV samples scored with stored and lexical groupings.

Prints seconds per full evaluation (file reading, grouping, scoring) and the ratio to a
baseline measured in the same run: scoring without any grouping. The goal is under 1 s
per evaluation with stored or lexical grouping (resources loaded once, as in a sweep).

    python benchmarks/bench_eval.py [--data ../shared/data/mer2024-ov] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from affectgpt.eval.grouping import load_stored_groupings
from affectgpt.eval.labels import read_labels
from affectgpt.eval.lexical import LexicalGrouper, lexical_groupings
from affectgpt.eval.set_metric import evaluate_set

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mer2024-ov"


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    gold_csv, pred_csv = args.data / "check-openset.csv", args.data / "predict-openset.csv"

    def read():
        return read_labels(gold_csv, syntax="mertools"), read_labels(pred_csv, syntax="mertools")

    t = time.perf_counter()
    grouper = LexicalGrouper()
    grouper.group(["happy", "joyful"])  # force loading of the lexical resources
    load_lexical = time.perf_counter() - t

    def baseline():
        gold, pred = read()
        return evaluate_set(gold, pred)

    def stored():
        gold, pred = read()
        return evaluate_set(gold, pred, load_stored_groupings(args.data / "openset-synonym.zip"))

    def lexical():
        gold, pred = read()
        return evaluate_set(gold, pred, lexical_groupings(gold, pred, grouper=grouper))

    base = timed(baseline, args.repeat)
    print(f"lexical resources load (once per process): {load_lexical:.3f} s")
    print(f"{'method':<22}{'seconds':>10}{'x baseline':>12}{'goal <1 s':>11}")
    print(f"{'no grouping (baseline)':<22}{base:>10.4f}{1.0:>12.2f}{'':>11}")
    for name, fn in (("stored grouping", stored), ("lexical grouping", lexical)):
        s = timed(fn, args.repeat)
        print(f"{name:<22}{s:>10.4f}{s / base:>12.2f}{'yes' if s < 1 else 'NO':>11}")


if __name__ == "__main__":
    main()
