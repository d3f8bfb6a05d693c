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

import fcntl
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class StoreError(RuntimeError):
    """A stage file that cannot be used (locked by another run, or corrupt inside)."""


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


def read_rows(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The complete rows of a JSONL file and the byte length they span (a torn last line
    is not counted). A bad line before the last one raises :class:`StoreError`."""
    rows: list[dict[str, Any]] = []
    good = 0
    with open(path, "rb") as fh:
        data = fh.read()
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end == -1:  # no newline: the writer died mid-line
            break
        line = data[pos:end]
        if line.strip():
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                if data[end + 1:].strip():
                    raise StoreError(f"{path}: corrupt row at byte {pos} followed by more rows; "
                                     "the file was edited by hand?") from None
                break
            if not isinstance(row, dict):
                raise StoreError(f"{path}: row at byte {pos} is not a JSON object")
            rows.append(row)
        pos = good = end + 1
    return rows, good


def iter_stage_rows(out: Path, stage: str, kind: str = "") -> Iterator[dict[str, Any]]:
    """Complete rows of every file of a stage (a torn last line is skipped, not cut)."""
    for path in stage_files(out, stage, kind):
        yield from read_rows(path)[0]


class JsonlStore:
    """An append-only JSONL file, keyed by ``row[key]`` unless ``unique=False``.

    Opening takes an exclusive lock (:class:`StoreError` when another process holds it),
    cuts a torn last line and loads the keys. :meth:`append` writes one line and fsyncs;
    it returns False (writing nothing) for a key already present.
    """

    def __init__(self, path: str | Path, *, key: str = "name", unique: bool = True):
        self.path = Path(path)
        self.key = key
        self.unique = unique
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise StoreError(f"{self.path} is being written by another run (locked); "
                             "two runs of one shard cannot share an output folder") from None
        rows, good = read_rows(self.path)
        size = os.fstat(self._fd).st_size
        self.dropped_bytes = size - good
        if self.dropped_bytes:
            os.ftruncate(self._fd, good)
            os.fsync(self._fd)
        self.rows = rows
        self.keys: set[str] = {str(r.get(key)) for r in rows}
        self._lock = threading.Lock()

    def __contains__(self, name: str) -> bool:
        return name in self.keys

    def __len__(self) -> int:
        return len(self.rows)

    def append(self, row: dict[str, Any]) -> bool:
        name = str(row[self.key])
        line = (json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
        with self._lock:
            if self.unique and name in self.keys:
                return False
            os.write(self._fd, line)  # O_APPEND: one write, at the end
            os.fsync(self._fd)
            self.keys.add(name)
            self.rows.append(row)
        return True

    def close(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> JsonlStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # pragma: no cover - a forgotten close
        try:
            self.close()
        except Exception:
            pass
