"""Paper-style tables (x100, mean ± std over runs) and JSON results."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from affectgpt.eval.set_metric import mean_std
from affectgpt.io import atomic_write


def format_cell(values: Sequence[float]) -> str:
    """``57.71`` for one run, ``57.71±0.05`` for several (x100, population std)."""
    if len(values) == 1:
        return f"{100 * values[0]:.2f}"
    mean, std = mean_std(values)
    return f"{100 * mean:.2f}±{100 * std:.2f}"


def short_names(paths: Sequence[str]) -> list[str]:
    """File names when they are unique, else the paths as given."""
    names = [Path(p).name for p in paths]
    return names if len(set(names)) == len(names) else list(paths)


def runs_table(title: str, columns: Sequence[str], runs: Sequence[tuple[str, Sequence[float]]]) -> Table:
    """One row per run plus a ``mean ± std`` row when there are several runs; with many
    columns the table is transposed (one row per score, one column per run)."""
    table = Table(title=title, title_justify="left")
    if len(columns) > 6:
        table.add_column("score")
        for name, _ in runs:
            table.add_column(name, justify="right")
        if len(runs) > 1:
            table.add_column("mean±std", justify="right", style="bold")
        for i, column in enumerate(columns):
            values = [v[i] for _, v in runs]
            extra = [format_cell(values)] if len(runs) > 1 else []
            table.add_row(column, *[format_cell([v]) for v in values], *extra)
        return table
    table.add_column("run")
    for column in columns:
        table.add_column(column, justify="right")
    for name, values in runs:
        table.add_row(name, *[format_cell([v]) for v in values])
    if len(runs) > 1:
        per_column = list(zip(*[values for _, values in runs]))
        table.add_row("mean±std", *[format_cell(v) for v in per_column], style="bold")
    return table


def summary_table(title: str, columns: Sequence[str],
                  rows: Sequence[tuple[str, Sequence[Sequence[float]]]]) -> Table:
    """One row per method; each cell is ``mean±std`` of that column's values over runs."""
    table = Table(title=title, title_justify="left")
    table.add_column("")
    for column in columns:
        table.add_column(column, justify="right")
    for name, per_column in rows:
        table.add_row(name, *[format_cell(values) for values in per_column])
    return table


def print_table(table: Table, console: Console | None = None) -> None:
    (console or Console()).print(table)


def write_json(data: object, path: str | Path) -> Path:
    """Write JSON atomically: an interrupted write never leaves half a file."""
    return atomic_write(path, json.dumps(data, ensure_ascii=False, indent=1))
