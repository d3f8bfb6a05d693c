"""Durable files: one atomic writer and one append-only JSONL store.

Everything the package writes goes through here, so an interrupted run (``kill -9``, a
full disk, a power cut) leaves either the old file or the new one, never half a file:

- :func:`atomic_write` / :func:`atomic_path` / :func:`write_json`: a temporary file in the
  same folder, fsynced, renamed over the target;
- :func:`publish_directory`: the same for a folder written in full under a temporary name;
- :class:`JsonlStore`: an append-only JSONL file (one fsynced ``write`` per row, an
  exclusive lock per writer, a torn last line cut on open); :func:`read_rows` and
  :func:`read_jsonl` read such files without taking the lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "JsonlStore",
    "JsonlStoreError",
    "append_jsonl",
    "atomic_path",
    "atomic_write",
    "EXPORT_MARKER",
    "publish_directory",
    "publish_export",
    "read_export_marker",
    "read_jsonl",
    "read_rows",
    "write_json",
]


@contextmanager
def atomic_path(path: str | Path, mode: str = "w", **kwargs) -> Iterator[Any]:
    """Open a temporary file next to ``path`` (``open``'s ``mode`` and keyword arguments);
    when the block ends without an exception the file is fsynced and renamed over
    ``path``, otherwise it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` atomically; returns ``path``."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path, "wb") as handle:
        handle.write(payload)
    return Path(path)


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2,
               sort_keys: bool = False) -> Path:
    """``obj`` as UTF-8 JSON (non-ASCII kept), written atomically, ending in a newline."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, ensure_ascii=False)
    return atomic_write(path, text + "\n")


def publish_directory(tmp: Path, target: Path, is_complete: Callable[[Path], bool]) -> Path:
    """Rename a fully written temporary folder to ``target``. When another process published
    a complete ``target`` first (``is_complete(target)``), keep theirs and drop ``tmp``."""
    try:
        os.rename(tmp, target)
    except OSError:
        if not is_complete(target):
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return target


#: the file that marks a published export folder complete (written last, JSON)
EXPORT_MARKER = ".affectgpt-export.json"


def read_export_marker(folder: str | Path) -> dict | None:
    """The marker :func:`publish_export` wrote into ``folder``; None when the folder is not
    a complete export."""
    try:
        return json.loads((Path(folder) / EXPORT_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def publish_export(tmp: Path, target: Path, info: dict[str, Any]) -> Path:
    """Mark a fully written temporary folder complete with ``info`` and publish it as
    ``target`` (:func:`publish_directory`; another process's complete export wins)."""
    atomic_write(Path(tmp) / EXPORT_MARKER, json.dumps(info, indent=2) + "\n")
    return publish_directory(tmp, target, lambda t: read_export_marker(t) is not None)


class JsonlStoreError(RuntimeError):
    """A JSONL file that cannot be used (locked by another writer, or corrupt inside)."""


def read_rows(path: str | Path) -> tuple[list[dict[str, Any]], int]:
    """The complete rows of a JSONL file and the byte length they span.

    A last line without its newline, or a last line that is not JSON, is what a killed
    writer leaves: it is not counted. A bad line before the last one, or a row that is not
    a JSON object, raises :class:`JsonlStoreError`.
    """
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
                    raise JsonlStoreError(
                        f"{path}: corrupt row at byte {pos} followed by more rows; "
                        "the file was edited by hand?") from None
                break
            if not isinstance(row, dict):
                raise JsonlStoreError(f"{path}: row at byte {pos} is not a JSON object")
            rows.append(row)
        pos = good = end + 1
    return rows, good


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The complete rows of a JSONL file (``[]`` when it does not exist)."""
    return read_rows(path)[0] if Path(path).is_file() else []


def append_jsonl(path: str | Path, row: dict[str, Any]) -> None:
    """Append one row to a JSONL file that only this process writes (logs), fsynced."""
    line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


class JsonlStore:
    """An append-only JSONL file, keyed by ``row[key]`` unless ``unique=False``.

    Opening takes an exclusive lock (:class:`JsonlStoreError` when another process holds
    it), cuts a torn last line and loads the rows. :meth:`append` writes one line and
    fsyncs; it returns False (writing nothing) for a key already present. ``truncate=True``
    starts the file empty.
    """

    def __init__(self, path: str | Path, *, key: str = "name", unique: bool = True,
                 truncate: bool = False):
        self.path = Path(path)
        self.key = key
        self.unique = unique
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise JsonlStoreError(f"{self.path} is being written by another run (locked); "
                                  "two runs of one shard cannot share an output folder") from None
        if truncate:
            os.ftruncate(self._fd, 0)
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
