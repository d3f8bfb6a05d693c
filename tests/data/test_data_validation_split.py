"""Validation splits carved from training names: sizes, determinism, independence from the
test split drawn with the same seed, written down like the test split."""

import pytest

from affectgpt.data.splits import (
    VALIDATION,
    read_split,
    seeded_split,
    split_count,
    validation_split,
    write_split,
)

NAMES = [f"clip_{i:04d}" for i in range(60)]


def test_sizes_counts_and_fractions():
    assert sum(v == VALIDATION for v in validation_split(NAMES, 12, seed=0).values()) == 12
    assert sum(v == VALIDATION for v in validation_split(NAMES, 0.25, seed=0).values()) == 15
    assert set(validation_split(NAMES, 0, seed=0).values()) == {"train"}
    assert split_count(0.1, 5) == 1 and split_count(0.1, 4) == 0 and split_count(3, 9) == 3
    for bad in (61, -1, 1.5):
        with pytest.raises(ValueError, match="val"):
            validation_split(NAMES, bad, seed=0)
    with pytest.raises(ValueError, match="duplicate"):
        validation_split(NAMES + NAMES[:1], 3, seed=0)


def test_deterministic_order_free_and_not_the_test_split():
    a = validation_split(NAMES, 10, seed=3)
    assert a == validation_split(list(reversed(NAMES)), 10, seed=3)
    assert a != validation_split(NAMES, 10, seed=4)
    val = {n for n, part in a.items() if part == VALIDATION}
    test = {n for n, part in seeded_split(NAMES, 10, seed=3).items() if part == "test"}
    assert val != test  # its own keys: not the same ranking as the test split


def test_written_down_with_its_seed(tmp_path):
    assignment = validation_split(NAMES, 6, seed=1)
    path = write_split(tmp_path / "validation.csv", assignment, 1, test_size=6)
    assert read_split(path) == assignment
