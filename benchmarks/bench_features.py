"""Feature-cache speed-up for a training epoch.

Generates synthetic clips, builds a Whisper-base feature cache, then times one pass over
the dataset (what each training epoch pays for the frozen audio branch) reading raw
media (decode + resample + encode, as the reference code does every step) versus
reading the cache. Prints both and the ratio (goal: at least 5x).

    python benchmarks/bench_features.py [--clips 12] [--encoder whisper-base-clip]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from affectgpt.data.dataset import EmotionDataset
from affectgpt.data.manifest import read_manifest
from affectgpt.data.synthetic import make_synthetic
from affectgpt.features.jobs import audio_features, build_features


def epoch_seconds(dataset: EmotionDataset) -> float:
    started = time.perf_counter()
    for item in dataset:
        item["audio"].sum().item()
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--encoder", default="whisper-base-clip")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_synthetic(root / "clips", args.clips, cue="mixed", seed=0, progress=False)
        manifest = root / "clips" / "manifest.jsonl"
        samples = read_manifest(manifest)
        t = time.perf_counter()
        build_features(manifest, args.encoder, root / "cache", workers=2, progress=False)
        build = time.perf_counter() - t
        raw = epoch_seconds(EmotionDataset(samples, audio=audio_features(samples, args.encoder)))
        cached = epoch_seconds(EmotionDataset(samples, audio=audio_features(samples, args.encoder, root / "cache")))
    print(f"{args.clips} clips, encoder {args.encoder}; cache built once in {build:.2f} s")
    print(f"epoch from raw media : {raw:8.3f} s ({args.clips / raw:7.1f} clips/s)")
    print(f"epoch from the cache : {cached:8.3f} s ({args.clips / cached:7.1f} clips/s)")
    print(f"speed-up             : {raw / cached:8.1f}x  (goal >= 5x: {'yes' if raw / cached >= 5 else 'NO'})")


if __name__ == "__main__":
    main()
