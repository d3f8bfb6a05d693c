"""Fixtures for the trainer tests; the model and data live in train_toys."""

from __future__ import annotations

import pytest
import torch
from train_toys import ToyDataset


@pytest.fixture(autouse=True)
def _one_thread():
    """Bit-exact comparisons and a quiet 2-core machine: one intra-op thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def toy_data() -> ToyDataset:
    return ToyDataset()
