"""A seeded, shardable, resumable batch sampler whose whole state is (pass, position)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch


class ResumableBatchSampler:
    """Batches of dataset indices for one process, reproducible from ``(data_epoch, position)``.

    Pass ``k`` over the data (``data_epoch = k``) uses exactly the indices of
    ``torch.utils.data.DistributedSampler(dataset, world_size, rank, shuffle, seed)`` after
    ``set_epoch(k)``: a ``randperm`` seeded with ``seed + k``, padded by wrapping round to a
    multiple of ``world_size``, then every ``world_size``-th index from ``rank``. Each
    process thus sees ``ceil(n / world_size)`` samples per pass, cut into batches of
    ``batch_size``; the last one is shorter, or dropped with ``drop_last``. Batches never
    straddle two passes.

    Iterating yields batches from the current state onward, endlessly, crossing passes;
    iteration does not change the state (a ``DataLoader`` prefetches ahead of what the
    trainer has used). The trainer calls :meth:`advance` for each batch it consumed, so
    :meth:`state_dict` is always the position of the next unconsumed batch.
    """

    def __init__(self, num_samples: int, batch_size: int, *, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = False, rank: int = 0, world_size: int = 1,
                 data_epoch: int = 0, position: int = 0):
        if num_samples < 1:
            raise ValueError("the training dataset is empty")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.num_samples, self.batch_size = int(num_samples), int(batch_size)
        self.seed, self.shuffle, self.drop_last = int(seed), bool(shuffle), bool(drop_last)
        self.rank, self.world_size = int(rank), int(world_size)
        self.shard_size = math.ceil(self.num_samples / self.world_size)
        if self.drop_last and self.shard_size < self.batch_size:
            raise ValueError(f"drop_last with {self.shard_size} samples per process and "
                             f"batch size {self.batch_size} leaves no batch")
        self.data_epoch, self.position = int(data_epoch), int(position)
        self._cache: tuple[int, list[int]] | None = None

    # ------------------------------------------------------------------ the plan
    def indices(self, data_epoch: int) -> list[int]:
        """This process's indices for pass ``data_epoch`` (same as ``DistributedSampler``)."""
        if self._cache is not None and self._cache[0] == data_epoch:
            return self._cache[1]
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + data_epoch)
            order = torch.randperm(self.num_samples, generator=g).tolist()
        else:
            order = list(range(self.num_samples))
        total = self.shard_size * self.world_size
        pad = total - len(order)
        if pad > 0:
            order += (order * math.ceil(pad / len(order)))[:pad]
        shard = order[self.rank:total:self.world_size]
        self._cache = (data_epoch, shard)
        return shard

    @property
    def batches_per_epoch(self) -> int:
        """Batches per pass over the data on this process."""
        if self.drop_last:
            return self.shard_size // self.batch_size
        return math.ceil(self.shard_size / self.batch_size)

    def _usable(self) -> int:
        return self.batches_per_epoch * self.batch_size if self.drop_last else self.shard_size

    def _normalise(self, data_epoch: int, position: int) -> tuple[int, int]:
        if position >= self._usable():
            return data_epoch + 1, 0
        return data_epoch, position

    def __iter__(self) -> Iterator[list[int]]:
        # the start is read now, not at the first next(): the stream is fixed by iter()
        return self._stream(*self._normalise(self.data_epoch, self.position))

    def _stream(self, data_epoch: int, position: int) -> Iterator[list[int]]:
        while True:
            shard = self.indices(data_epoch)
            usable = self._usable()
            while position < usable:
                batch = shard[position:min(position + self.batch_size, usable)]
                position += len(batch)
                yield batch
            data_epoch, position = data_epoch + 1, 0

    # ------------------------------------------------------------------ state
    def next_batch_len(self) -> int:
        """Size of the next unconsumed batch."""
        data_epoch, position = self._normalise(self.data_epoch, self.position)
        return min(self.batch_size, self._usable() - position)

    def advance(self) -> None:
        """Record that the next batch was consumed."""
        data_epoch, position = self._normalise(self.data_epoch, self.position)
        position += min(self.batch_size, self._usable() - position)
        self.data_epoch, self.position = self._normalise(data_epoch, position)

    def state_dict(self) -> dict[str, int]:
        return {"data_epoch": self.data_epoch, "position": self.position, "seed": self.seed,
                "world_size": self.world_size, "num_samples": self.num_samples,
                "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        for key in ("num_samples", "world_size", "batch_size", "seed"):
            if key in state and int(state[key]) != getattr(self, key):
                raise ValueError(f"cannot resume the data order: {key} was {state[key]}, "
                                 f"now {getattr(self, key)}")
        self.data_epoch, self.position = int(state["data_epoch"]), int(state["position"])
