"""Append-only JSONL stage files that survive ``kill -9``.

Each stage of a run writes ``<out>/<stage>.jsonl`` (``<stage>.<k>-of-<n>.jsonl`` for shard
``k/n``) with one row per sample, and ``<stage>.failures...jsonl`` with one row per failed
attempt. A row is one ``write`` of a whole line followed by ``fsync``, under an exclusive
``flock`` held for the life of the writer (two runs never write one file). On open, a last
line without its newline or that is not valid JSON -- what a killed writer can leave -- is
cut off the file, so a resumed run appends after the last complete row. Rows are keyed by
``(stage, name)``: appending a key already present is a no-op, so a file never holds a
sample twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from affectgpt.io import JsonlStore, JsonlStoreError, read_rows

__all__ = ["JsonlStore", "StoreError", "iter_stage_rows", "read_rows", "shard_suffix",
           "stage_files", "stage_path"]


StoreError = JsonlStoreError  # the name this module used before affectgpt.io


def shard_suffix(shard: tuple[int, int] | None) -> str:
    return "" if shard is None else f".{shard[0]}-of-{shard[1]}"


def stage_path(out: Path, stage: str, shard: tuple[int, int] | None = None,
               kind: str = "") -> Path:
    """``<out>/<stage>[.failures][.<k>-of-<n>].jsonl``."""
    return Path(out) / f"{stage}{'.' + kind if kind else ''}{shard_suffix(shard)}.jsonl"


def stage_files(out: Path, stage: str, kind: str = "") -> list[Path]:
    """Every file of a stage in ``out`` (the unsharded one and every shard's), sorted."""
    pattern = re.compile(re.escape(stage + ("." + kind if kind else ""))
                         + r"(\.\d+-of-\d+)?\.jsonl$")
    return sorted(p for p in Path(out).glob(f"{stage}*.jsonl") if pattern.fullmatch(p.name))


def iter_stage_rows(out: Path, stage: str, kind: str = "") -> Iterator[dict[str, Any]]:
    """Complete rows of every file of a stage (a torn last line is skipped, not cut)."""
    for path in stage_files(out, stage, kind):
        yield from read_rows(path)[0]
