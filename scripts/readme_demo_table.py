#!/usr/bin/env python3
"""Render the README's demo results from ``benchmarks/results/demo-cpu.json``.

Without that file the block says that no full run is committed (and shows no numbers).

    python scripts/readme_demo_table.py            # rewrite the README's demo block
    python scripts/readme_demo_table.py --check    # exit 1 when README and file disagree

The block sits between the markers of :mod:`affectgpt.demo.results` (``README_START`` /
``README_END``); everything in it comes from the results file that ``make demo`` writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from affectgpt.demo.results import (
    readme_block,
    render_pending_block,
    render_readme_block,
    replace_readme_block,
)

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path,
                        default=ROOT / "benchmarks" / "results" / "demo-cpu.json")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--check", action="store_true",
                        help="only compare; exit 1 when the README's block differs")
    args = parser.parse_args(argv)
    if args.results.is_file():
        block = render_readme_block(json.loads(args.results.read_text(encoding="utf-8")))
    else:  # no numbers in the README that no file backs
        block = render_pending_block()
    readme = args.readme.read_text(encoding="utf-8")
    if args.check:
        if readme_block(readme) != block:
            print(f"{args.readme} does not show {args.results}: run "
                  "scripts/readme_demo_table.py", file=sys.stderr)
            return 1
        return 0
    args.readme.write_text(replace_readme_block(readme, block), encoding="utf-8")
    print(f"{args.readme}: demo block rendered from {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
