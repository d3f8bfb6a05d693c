"""Where affectgpt keeps derived files (converted weights, lexicon indexes, LLM replies),
and which names read from files may become paths."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$AFFECTGPT_CACHE`` or ``~/.cache/affectgpt``."""
    env = os.environ.get("AFFECTGPT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "affectgpt"


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
