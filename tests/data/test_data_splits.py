"""Seeded splits: sizes, determinism, independence from order, stored with their seed."""

import hashlib
import json

import pytest

from affectgpt.data.manifest import ManifestError, Sample
from affectgpt.data.splits import (
    apply_split,
    emer_fine_split,
    meta_path,
    read_split,
    seeded_split,
    write_split,
)
from affectgpt.eval.labels import read_labels, read_names

NAMES = [f"sample_{i:08d}" for i in range(332)]


def test_emer_fine_default_is_266_66():
    split = emer_fine_split(NAMES, seed=0)
    assert sorted(split) == NAMES
    assert sum(v == "train" for v in split.values()) == 266
    assert sum(v == "test" for v in split.values()) == 66
    assert seeded_split(NAMES, 0.2, seed=0) == split  # 0.2 * 332 = 66.4 -> 66


def test_split_is_deterministic_and_order_free():
    a = seeded_split(NAMES, 66, seed=7)
    assert a == seeded_split(list(reversed(NAMES)), 66, seed=7)
    assert a != seeded_split(NAMES, 66, seed=8)


def test_split_does_not_depend_on_library_versions():
    # sha256 ranks, not a library RNG: these names are the test set on every platform.
    test = [n for n, part in seeded_split(NAMES[:20], 4, seed=0).items() if part == "test"]
    assert test == ["sample_00000005", "sample_00000007", "sample_00000008", "sample_00000011"]
    key = {n: hashlib.sha256(f"0:{n}".encode()).hexdigest() for n in NAMES[:20]}
    assert sorted(test) == sorted(sorted(key, key=key.get)[:4])


def test_adding_names_keeps_relative_ranks():
    small = seeded_split(NAMES[:100], 10, seed=3)
    large = seeded_split(NAMES, 33, seed=3)
    small_test = {n for n, p in small.items() if p == "test"}
    large_test = {n for n, p in large.items() if p == "test"}
    assert small_test <= large_test or large_test & set(NAMES[:100]) <= small_test


@pytest.mark.parametrize("size", [-1, 333, 1.5])
def test_bad_sizes(size):
    with pytest.raises(ValueError):
        seeded_split(NAMES, size, seed=0)


def test_duplicates_rejected():
    with pytest.raises(ValueError, match="duplicate"):
        seeded_split(["a", "b", "a"], 1, seed=0)


def test_write_and_read_split(tmp_path, shared_data):
    names = list(read_labels(shared_data / "mer2024-ov" / "check-openset.csv"))
    assert len(names) == 332
    split = emer_fine_split(names, seed=0)
    path = write_split(tmp_path / "emer-fine-split.csv", split, seed=0, test_size=66,
                       source="EMER-Fine")
    assert read_split(path) == split
    meta = json.loads(meta_path(path).read_text())
    assert meta["seed"] == 0 and meta["method"] == "sha256-rank-v1"
    assert meta["sizes"] == {"test": 66, "train": 266} and meta["n"] == 332
    # The eval code reads the same file.
    assert len(read_names(path, split="test")) == 66
    # Writing again gives byte-identical files (versionable).
    before = path.read_bytes(), meta_path(path).read_bytes()
    write_split(path, split, seed=0, test_size=66, source="EMER-Fine")
    assert (path.read_bytes(), meta_path(path).read_bytes()) == before


def test_edited_split_file_is_detected(tmp_path):
    path = write_split(tmp_path / "s.csv", seeded_split(["a", "b", "c"], 1, 0), seed=0)
    path.write_text(path.read_text() + "d,train\n")
    with pytest.raises(ManifestError, match="do not match the sidecar"):
        read_split(path)


def test_apply_split():
    samples = [Sample(name="a"), Sample(name="b", split="old")]
    out = apply_split(samples, {"a": "train", "b": "test"})
    assert [s.split for s in out] == ["train", "test"] and samples[1].split == "old"
    with pytest.raises(ManifestError, match="not in the split"):
        apply_split(samples, {"a": "train"})
    with pytest.raises(ManifestError, match="are not samples"):
        apply_split(samples, {"a": "train", "b": "test", "c": "test"})
    assert [s.split for s in apply_split(samples, {"a": "test"}, strict=False)] == ["test", "old"]
