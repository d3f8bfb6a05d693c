"""Fixtures of the annotation tests: a few real synthetic clips (made once per session), a
text-only manifest, recorded clue files, and a helper to point text stages at a server."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from annotate_helpers import AUDIO_CLUES, SUBTITLES, VIDEO_CLUES

from affectgpt.data.manifest import Sample, write_manifest


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> Path:
    """Manifest of 3 real synthetic mp4 clips (espeak speech, rendered faces)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    from affectgpt.data.synthetic import make_synthetic

    out = tmp_path_factory.mktemp("annotate-clips")
    make_synthetic(out, 3, cue="mixed", seed=3, duration=(2.5, 3.5), size=128, workers=1,
                   progress=False)
    return out / "manifest.jsonl"


@pytest.fixture
def text_manifest(tmp_path) -> Path:
    """Six samples with subtitles and no media (for the text stages)."""
    path = tmp_path / "text-manifest.jsonl"
    write_manifest([Sample(name=f"clip_{i:03d}", subtitle_en=s) for i, s in enumerate(SUBTITLES)],
                   path)
    return path


@pytest.fixture
def recorded_clues(tmp_path) -> dict[str, Path]:
    """Recorded audio and video clue files (CSV name,clue), as made by external MLLMs."""
    files = {}
    for stage, texts in (("audio-clue", AUDIO_CLUES), ("video-clue", VIDEO_CLUES)):
        path = tmp_path / f"recorded-{stage}.csv"
        with open(path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["name", "clue"])
            writer.writerows((f"clip_{i:03d}", t) for i, t in enumerate(texts))
        files[stage] = path
    return files
