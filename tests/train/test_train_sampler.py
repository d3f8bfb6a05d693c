"""The resumable batch sampler: DistributedSampler-identical shards, state = (pass, position)."""

from __future__ import annotations

import itertools

import pytest
from torch.utils.data import DistributedSampler

from affectgpt.train import ResumableBatchSampler


def _flat(batches):
    return [i for b in batches for i in b]


@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("shuffle", [True, False])
def test_shards_match_distributed_sampler(world_size, shuffle):
    data = list(range(23))
    for rank in range(world_size):
        ours = ResumableBatchSampler(23, 4, seed=7, shuffle=shuffle, rank=rank,
                                     world_size=world_size)
        ref = DistributedSampler(data, num_replicas=world_size, rank=rank, shuffle=shuffle,
                                 seed=7)
        for epoch in range(3):
            ref.set_epoch(epoch)
            assert ours.indices(epoch) == list(ref)


def test_passes_are_permutations_and_differ():
    s = ResumableBatchSampler(10, 3, seed=1)
    assert s.batches_per_epoch == 4
    batches = list(itertools.islice(iter(s), 8))
    assert [len(b) for b in batches] == [3, 3, 3, 1, 3, 3, 3, 1]  # never straddles passes
    first, second = _flat(batches[:4]), _flat(batches[4:])
    assert sorted(first) == sorted(second) == list(range(10))
    assert first != second


def test_drop_last():
    s = ResumableBatchSampler(10, 3, seed=1, drop_last=True)
    assert s.batches_per_epoch == 3
    batches = list(itertools.islice(iter(s), 6))
    assert all(len(b) == 3 for b in batches)
    assert _flat(batches[:3]) == s.indices(0)[:9]
    assert _flat(batches[3:]) == s.indices(1)[:9]


def test_state_resumes_the_stream_exactly():
    full = ResumableBatchSampler(10, 3, seed=5)
    reference = list(itertools.islice(iter(full), 20))
    for consumed in (0, 1, 3, 4, 7, 13):
        s = ResumableBatchSampler(10, 3, seed=5)
        for _ in range(consumed):
            s.advance()
        state = s.state_dict()
        fresh = ResumableBatchSampler(10, 3, seed=5)
        fresh.load_state_dict(state)
        assert list(itertools.islice(iter(fresh), 20 - consumed)) == reference[consumed:]
        # iterating never moves the state: a DataLoader prefetches ahead
        assert fresh.state_dict() == state
    s = ResumableBatchSampler(10, 3, seed=5)
    for _ in range(4):  # one full pass: the state is (1, 0)
        s.advance()
    assert (s.data_epoch, s.position) == (1, 0)
    assert s.next_batch_len() == 3


def test_resume_refuses_a_different_layout():
    state = ResumableBatchSampler(10, 3, seed=5, world_size=2).state_dict()
    with pytest.raises(ValueError, match="world_size"):
        ResumableBatchSampler(10, 3, seed=5).load_state_dict(state)
    with pytest.raises(ValueError, match="num_samples"):
        ResumableBatchSampler(11, 3, seed=5, world_size=2).load_state_dict(state)
