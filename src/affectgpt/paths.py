"""Where affectgpt keeps derived files (converted weights, lexicon indexes, LLM replies)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$AFFECTGPT_CACHE`` or ``~/.cache/affectgpt``."""
    env = os.environ.get("AFFECTGPT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "affectgpt"


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write a file via a temporary file in the same folder and a rename, so readers and
    interrupted runs never see half a file."""
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def publish_directory(tmp: Path, target: Path, is_complete) -> Path:
    """Rename a fully written temporary folder to ``target``. When another process published
    a complete ``target`` first (``is_complete(target)``), keep theirs and drop ``tmp``."""
    import shutil

    try:
        os.rename(tmp, target)
    except OSError:
        if not is_complete(target):
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# ----------------------------------------------------------------------------- names from files


class UnsafeNameError(ValueError):
    """A name read from a file (a sample name, a shard named by a checkpoint index) that would
    leave its folder if joined into a path.

    Attributes:
        name: the offending name.
        reason: what is wrong with it.
        path: the file it was read from, or ``None``.
        line: its line (or row) in that file, or ``None``.
        what: what the name is (``"sample name"``, ``"shard file name"``, ...).
    """

    def __init__(self, name: str, reason: str, path: str | os.PathLike[str] | None = None,
                 line: int | None = None, what: str = "name") -> None:
        self.name = name
        self.reason = reason
        self.path = None if path is None else os.fspath(path)
        self.line = line
        self.what = what
        where = ""
        if self.path is not None:
            where = f"{self.path}, line {line}: " if line is not None else f"{self.path}: "
        elif line is not None:
            where = f"line {line}: "
        super().__init__(f"{where}{what} {name!r} {reason}")

    def __reduce__(self):
        return (type(self), (self.name, self.reason, self.path, self.line, self.what))


def unsafe_name_reason(name: str) -> str | None:
    """Why ``name`` cannot be used as one file or folder name inside a folder, or ``None``.

    Refused: empty names, ``.`` and ``..``, absolute paths, names holding a path separator
    (``/`` or ``\\``), a NUL byte or any other control character (C0, DEL, C1), and Windows
    drive prefixes (``C:``). Everything else (spaces, dots inside, Unicode) is allowed.
    """
    if not isinstance(name, str):
        return f"is a {type(name).__name__}, not a string"
    if not name:
        return "is empty"
    if name in (".", ".."):
        return "is a relative folder reference and would leave its folder"
    if "\x00" in name:
        return "holds a NUL byte"
    bad = next((c for c in name if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0), None)
    if bad is not None:
        return f"holds the control character {bad!r}"
    if name.startswith(("/", "\\")) or os.path.isabs(name):
        return "is an absolute path and would leave its folder"
    if "/" in name or "\\" in name:
        if ".." in name.replace("\\", "/").split("/"):
            return "holds '..' and would leave its folder"
        return "holds a path separator"
    if len(name) >= 2 and name[1] == ":" and name[0].isalpha():
        return "starts with a drive letter"
    return None


def check_name(name: str, *, what: str = "name", path: str | os.PathLike[str] | None = None,
               line: int | None = None) -> str:
    """Return ``name`` if it is one safe path component (see :func:`unsafe_name_reason`),
    else raise :class:`UnsafeNameError` naming ``path`` and ``line``."""
    reason = unsafe_name_reason(name)
    if reason is not None:
        raise UnsafeNameError(name, reason, path, line, what)
    return name


def join_inside(folder: str | os.PathLike[str], name: str, *, what: str = "file name",
                path: str | os.PathLike[str] | None = None, line: int | None = None) -> Path:
    """``folder / name`` after checking that ``name`` is one safe component, so the result is
    a direct child of ``folder``; :class:`UnsafeNameError` otherwise, naming ``path`` (the
    file ``name`` was read from) and ``line``. (A child that is a symbolic link is followed as
    usual: checkpoint caches link shards to blobs.)"""
    return Path(folder) / check_name(name, what=what, path=path, line=line)
