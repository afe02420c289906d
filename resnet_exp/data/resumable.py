"""What makes the training loaders resume exactly and time their fetches.

- The order of epoch e is a pure function of (seed, e), drawn by `EpochSampler` (torch loader)
  or `GpuLoader` (gpu loader); augmentation randomness is seeded per batch from the same numbers.
- `state_dict()` says which epoch the loader is in and how many batches of it the trainer has
  processed; after `load_state_dict()` the next pass over that epoch skips those batches. Lightning
  stores the state in every checkpoint (the loaders are `_Stateful`), so a run resumed from a
  mid-epoch checkpoint sees exactly the batches the uninterrupted run would have seen.
- `FetchClock` adds up the host time spent inside the loader's `next()` (data wait).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from torch.utils.data import DataLoader, DistributedSampler

SEED_MODULUS = 2 ** 63


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 100003 + epoch) % SEED_MODULUS


def batch_seed(seed: int, epoch: int, rank: int, batch: int) -> int:
    """Seed of one training batch's augmentation: differs per epoch, rank and batch."""
    return ((epoch_seed(seed, epoch) * 1009 + rank + 1) * 65537 + batch) % SEED_MODULUS


class FetchClock:
    """Host seconds spent waiting for batches (inside the loader's `next()`), summed."""

    def __init__(self) -> None:
        self.total_s = 0.0

    def timed(self, batches: Iterable[Any]) -> Iterator[Any]:
        iterator = iter(batches)
        while True:
            start = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            self.total_s += time.perf_counter() - start
            yield batch


class ResumePoint:
    """The (epoch, batches processed) a loader was at, and how many batches a pass must skip."""

    def __init__(self, epoch_fn: Callable[[], int] | None, progress_fn: Callable[[], int] | None) -> None:
        self.epoch_fn, self.progress_fn = epoch_fn, progress_fn
        self._pending: dict[str, int] | None = None

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch_fn() if self.epoch_fn else 0,
                "batches": self.progress_fn() if self.progress_fn else 0}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._pending = {"epoch": int(state.get("epoch", -1)), "batches": int(state.get("batches", 0))}

    def skip(self, epoch: int, batches_in_epoch: int) -> int:
        """Batches of `epoch` already processed before the checkpoint (0 once used, or for
        another epoch, or when the checkpoint was taken at the very end of the epoch)."""
        pending, self._pending = self._pending, None
        if pending is None or pending["epoch"] != epoch or pending["batches"] >= batches_in_epoch:
            return 0
        return pending["batches"]


class EpochSampler(DistributedSampler):
    """Shuffled indices of one epoch, this rank's shard, as `(index, batch seed)` pairs.

    A DistributedSampler only so that Lightning leaves it in place under DDP (it shards
    itself, like `GpuLoader`); `DistributedSampler.__init__` is not called because it would ask
    torch.distributed for the world size.
    """

    def __init__(self, size: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 drop_last: bool = True, epoch_fn: Callable[[], int] | None = None) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch, self.epoch_fn = 0, epoch_fn
        self.resume = ResumePoint(None, None)

    def _shard_size(self) -> int:
        if self.drop_last:
            return self.size // self.world_size
        return len(range(self.rank, self.size, self.world_size))

    def __len__(self) -> int:
        return self._shard_size()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        import torch

        epoch = self.epoch_fn() if self.epoch_fn is not None else self.epoch
        gen = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        order = torch.randperm(self.size, generator=gen)
        shard = order[self.rank::self.world_size][: self._shard_size()].tolist()
        batches = len(shard) // self.batch_size if self.drop_last else -(-len(shard) // self.batch_size)
        start = self.resume.skip(epoch, batches) * self.batch_size
        for pos in range(start, len(shard)):
            yield shard[pos], batch_seed(self.seed, epoch, self.rank, pos // self.batch_size)


class ResumableLoader(DataLoader):
    """The torch training loader: an `EpochSampler`, resumable mid-epoch, fetches timed.

    `__iter__` is a generator, so the underlying iterator (and its workers' prefetching) starts at
    the first `next()`, when the trainer's epoch is the one being trained; Lightning creates the
    iterator earlier when it resumes."""

    def __init__(self, *args: Any, progress_fn: Callable[[], int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_clock = FetchClock()
        self.resume = ResumePoint(getattr(self.sampler, "epoch_fn", None), progress_fn)
        if isinstance(self.sampler, EpochSampler):  # another sampler (put in by hand) cannot skip
            self.sampler.resume = self.resume

    def state_dict(self) -> dict[str, int]:
        return self.resume.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.resume.load_state_dict(state)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        yield from self.fetch_clock.timed(super().__iter__())
