"""Fixtures of the data tests: the shared EMER-Fine files (by path) and small synthetic
corpora generated once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

# speech clips and the packaged Whisper-base transcriber (shared with other test folders)
from speech_clips import asr_cache, asr_cache_root, speech_dir, transcriber  # noqa: F401


@pytest.fixture(scope="session")
def emer_fine_files(shared_data: Path) -> dict[str, Path]:
    files = {
        "reason": shared_data / "emer-fine" / "final-EMER-reason.csv",
        "subtitles": shared_data / "emer-fine" / "subtitles.csv",
        "labels": shared_data / "mer2024-ov" / "check-openset.csv",
    }
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        pytest.skip(f"shared EMER-Fine files missing: {missing}")
    return files


@pytest.fixture(scope="session")
def espeak() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    return path


class SynthCache:
    """Generate each distinct synthetic corpus once per session."""

    def __init__(self, root: Path):
        self.root = root
        self._made: dict[tuple, tuple[Path, list]] = {}

    def get(self, n: int, **kwargs) -> tuple[Path, list]:
        from affectgpt.data.synthetic import make_synthetic

        key = (n, tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                               for k, v in kwargs.items())))
        if key not in self._made:
            out = self.root / f"corpus{len(self._made)}"
            kwargs.setdefault("workers", 1)
            kwargs.setdefault("progress", False)
            self._made[key] = (out, make_synthetic(out, n, **kwargs))
        return self._made[key]


@pytest.fixture(scope="session")
def synth(tmp_path_factory, espeak) -> SynthCache:
    return SynthCache(tmp_path_factory.mktemp("synthetic"))
