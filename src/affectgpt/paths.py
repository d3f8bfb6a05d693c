"""Where affectgpt keeps derived files (converted weights, lexicon indexes, LLM replies)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$AFFECTGPT_CACHE`` or ``~/.cache/affectgpt``."""
    env = os.environ.get("AFFECTGPT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "affectgpt"
