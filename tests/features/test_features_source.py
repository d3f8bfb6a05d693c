"""Datasets read raw media or the feature cache transparently, and refuse a foreign cache."""

import pytest
import torch

from affectgpt.data.dataset import EmotionDataset
from affectgpt.data.manifest import read_manifest
from affectgpt.data.synthetic import make_synthetic
from affectgpt.features.cache import FeatureCacheMismatch
from affectgpt.features.jobs import CachedFeatures, LiveFeatures, audio_features, build_features


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    make_synthetic(root, 3, cue="audio", seed=9, duration=(2.0, 2.5), size=64, fps=5, workers=1,
                   progress=False)
    return root / "manifest.jsonl"


def test_cache_and_live_agree(manifest, tmp_path):
    samples = read_manifest(manifest)
    live = audio_features(samples, "whisper-base-clip")
    assert isinstance(live, LiveFeatures)
    build_features(manifest, "whisper-base-clip", tmp_path / "cache", workers=0, shard_size=2,
                   progress=False)
    cached = audio_features(samples, "whisper-base-clip", tmp_path / "cache")
    assert isinstance(cached, CachedFeatures)
    live_ds, cached_ds = EmotionDataset(samples, audio=live), EmotionDataset(samples, audio=cached)
    for a, b in zip(live_ds, cached_ds):
        assert a["name"] == b["name"] and a["target"] == b["target"] and a["video"] is None
        assert a["audio"].shape == (8, 512)
        assert torch.allclose(a["audio"], b["audio"], atol=1e-5)


def test_foreign_cache_is_refused(manifest, tmp_path):
    samples = read_manifest(manifest)
    build_features(manifest, "whisper-base-clip", tmp_path / "cache", workers=0, progress=False)
    with pytest.raises(FeatureCacheMismatch, match="window"):
        audio_features(samples, "whisper-base", tmp_path / "cache")
