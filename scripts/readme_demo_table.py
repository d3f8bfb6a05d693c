#!/usr/bin/env python3
"""Render the README's demo results from ``benchmarks/results/demo-cpu.json``.

Without that file the block says that no full run is committed (and shows no numbers).

    python scripts/readme_demo_table.py            # rewrite the README's demo block
    python scripts/readme_demo_table.py --check    # exit 1 when README and file disagree

The block sits between the markers of :mod:`affectgpt.demo.results` (``README_START`` /
``README_END``); everything in it comes from the results file that ``make demo`` writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from affectgpt.demo.results import readme_block_main, render_pending_block, render_readme_block

ROOT = Path(__file__).resolve().parent.parent


def expected_block(results: Path) -> str:
    """The block the README should show for the results file ``results`` (or its absence:
    no numbers that no file backs)."""
    if results.is_file():
        return render_readme_block(json.loads(results.read_text(encoding="utf-8")))
    return render_pending_block()


def main(argv: list[str] | None = None) -> int:
    return readme_block_main(argv, description=__doc__.split("\n\n")[0],
                             results=ROOT / "benchmarks" / "results" / "demo-cpu.json",
                             readme=ROOT / "README.md", expected=expected_block)


if __name__ == "__main__":
    sys.exit(main())
