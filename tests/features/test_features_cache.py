"""Feature-cache mechanics with a tiny frozen torch encoder over real files."""

import json

import numpy as np
import pytest
import torch

from affectgpt.features.cache import FeatureCache, FeatureCacheMismatch, build_feature_cache


class TinyEncoder(torch.nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.proj = torch.nn.Linear(16, 4)

    @torch.no_grad()
    def forward(self, x):
        return self.proj(x)


def _files(tmp_path, n=7):
    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        name = f"clip{i:02d}"
        np.save(tmp_path / f"{name}.npy", rng.standard_normal((3, 16)).astype(np.float32))
        names.append(name)
    (tmp_path / "clip03.npy").write_bytes(b"not an array")  # a corrupt input
    return names


def _loader(root):
    def load(name):
        return torch.from_numpy(np.load(root / f"{name}.npy", allow_pickle=False))
    return load


FP = {"name": "tiny", "weights": "abc", "preprocess": {"n": 3}}


def test_build_skip_failures_and_read(tmp_path):
    names = _files(tmp_path)
    enc = TinyEncoder()
    out = tmp_path / "cache"
    summary = build_feature_cache(names, _loader(tmp_path), enc, FP, out, workers=2, shard_size=3,
                                  progress=False)
    assert (summary.encoded, summary.failed, summary.skipped) == (6, 1, 0)
    failures = [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]
    assert [f["name"] for f in failures] == ["clip03"] and failures[0]["reason"]
    cache = FeatureCache(out)
    assert sorted(cache.names) == [n for n in names if n != "clip03"] and len(cache.shards()) == 2
    x = torch.from_numpy(np.load(tmp_path / "clip00.npy"))
    assert torch.allclose(cache.get("clip00"), enc(x))
    with pytest.raises(KeyError, match="clip03"):
        cache.get("clip03")
    again = build_feature_cache(names, _loader(tmp_path), enc, FP, out, workers=0, progress=False)
    assert (again.skipped, again.encoded, again.failed) == (6, 0, 1)  # only the failed one retried


def test_mismatched_fingerprint_is_refused(tmp_path):
    names = _files(tmp_path, 2)
    out = tmp_path / "cache"
    build_feature_cache(names[:1], _loader(tmp_path), TinyEncoder(), FP, out, workers=0, progress=False)
    other = {**FP, "preprocess": {"n": 8}}
    with pytest.raises(FeatureCacheMismatch, match="preprocess.n: cache has 3, encoder has 8"):
        build_feature_cache(names, _loader(tmp_path), TinyEncoder(), other, out, workers=0, progress=False)
    with pytest.raises(FeatureCacheMismatch):
        FeatureCache(out).check(other)
    rebuilt = build_feature_cache(names[:1], _loader(tmp_path), TinyEncoder(1), other, out, workers=0,
                                  progress=False, fresh=True)
    assert rebuilt.encoded == 1 and FeatureCache(out).fingerprint == other


def test_leftover_temporary_shard_is_ignored(tmp_path):
    names = _files(tmp_path, 3)
    out = tmp_path / "cache"
    build_feature_cache(names[:2], _loader(tmp_path), TinyEncoder(), FP, out, workers=0, progress=False)
    (out / ".shard-abc.tmp").write_bytes(b"half a shard")  # what a kill during a write leaves
    cache = FeatureCache(out)
    assert sorted(cache.names) == names[:2]
