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
