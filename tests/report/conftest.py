"""Fixtures of the report tests: real synthetic clips (the headless Chromium fixtures are in
tests/conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> list:
    """Two real synthetic mp4 clips (faces, speech, subtitles) as manifest samples."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    from affectgpt.data.synthetic import make_synthetic

    out = tmp_path_factory.mktemp("report-clips")
    return make_synthetic(out, 2, seed=3, cue="all", workers=1, progress=False)


@pytest.fixture(scope="session")
def corrupt_clip(clips, tmp_path_factory) -> Path:
    """The first 3 kB of a real clip: a truncated mp4 that no decoder can use."""
    path = tmp_path_factory.mktemp("corrupt") / "broken.mp4"
    path.write_bytes(Path(clips[0].video).read_bytes()[:3000])
    return path
