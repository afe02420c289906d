"""What both training loaders share: the epoch's order, its DDP shards, exact resume, seeds, fetch timing.
A checkpoint holds the loader's `state_dict()` (epoch, batches processed); after `load_state_dict()` the next
pass over that epoch skips those batches, as the uninterrupted run would have gone on."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler

SEED_MODULUS = 2 ** 63


@dataclass
class FetchClock:
    """Host seconds spent waiting for batches (inside the loader's `next()`), summed."""

    total_s: float = 0.0

    def timed(self, batches: Iterable[Any]) -> Iterator[Any]:
        start = time.perf_counter()
        for batch in batches:  # each wait: from asking for the next batch until it is there
            self.total_s += time.perf_counter() - start
            yield batch
            start = time.perf_counter()


class EpochSampler(DistributedSampler):
    """One rank's share of every epoch as `(index, batch seed)` pairs, and the batches a resumed pass skips.
    A DistributedSampler so that Lightning leaves it in place under DDP (its `__init__` is not called)."""

    def __init__(self, size: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 drop_last: bool = True, shuffle: bool = True, epoch_fn: Callable[[], int] | None = None,
                 progress_fn: Callable[[], int] | None = None) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size, self.drop_last, self.shuffle = rank, world_size, drop_last, shuffle
        self.epoch, self.epoch_fn, self.progress_fn = 0, epoch_fn, progress_fn
        self._pending: dict[str, int] | None = None

    def __len__(self) -> int:
        if self.drop_last:
            return self.size // self.world_size  # every rank gets the same number; the remainder rotates out
        return len(range(self.rank, self.size, self.world_size))

    def num_batches(self) -> int:
        return len(self) // self.batch_size if self.drop_last else -(-len(self) // self.batch_size)

    def current_epoch(self) -> int:
        return self.epoch_fn() if self.epoch_fn is not None else self.epoch

    def epoch_seed(self, epoch: int) -> int:
        """Seed of `epoch`'s permutation: the same on every rank."""
        return (self.seed * 100003 + epoch) % SEED_MODULUS

    def shard(self, epoch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Positions (into the `size` items) this rank visits in `epoch`, in order."""
        if self.shuffle:
            gen = torch.Generator(device=device).manual_seed(self.epoch_seed(epoch))
            order = torch.randperm(self.size, generator=gen, device=device)
        else:
            order = torch.arange(self.size, device=device)
        return order[self.rank::self.world_size][: len(self)]

    def rank_seed(self, epoch: int) -> int:
        """Seed of this rank's augmentation stream in `epoch`."""
        return self.epoch_seed(epoch) * 1009 + self.rank + 1

    def batch_seed(self, epoch: int, batch: int) -> int:
        """Seed of one training batch's augmentation: differs per epoch, rank and batch."""
        return (self.rank_seed(epoch) * 65537 + batch) % SEED_MODULUS

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch_fn() if self.epoch_fn else 0,
                "batches": self.progress_fn() if self.progress_fn else 0}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._pending = {"epoch": int(state.get("epoch", -1)), "batches": int(state.get("batches", 0))}

    def skip(self, epoch: int) -> int:
        """Batches of `epoch` trained before the checkpoint; 0 once used, for another epoch, or at its end."""
        pending, self._pending = self._pending, None
        if pending is None or pending["epoch"] != epoch or pending["batches"] >= self.num_batches():
            return 0
        return pending["batches"]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.current_epoch()
        shard = self.shard(epoch).tolist()
        for pos in range(self.skip(epoch) * self.batch_size, len(shard)):
            yield shard[pos], self.batch_seed(epoch, pos // self.batch_size)


class ResumableLoader(DataLoader):
    """The torch training loader: an `EpochSampler`, resumable mid-epoch, fetches timed. `__iter__` is a
    generator, so workers start at the first `next()`, in the epoch being trained (also on resume)."""

    def __init__(self, *args: Any, progress_fn: Callable[[], int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_clock = FetchClock()
        # Another sampler (put in by hand, or by Lightning) cannot skip; the state is still kept.
        self.order = self.sampler if isinstance(self.sampler, EpochSampler) else EpochSampler(0, 1)
        self.order.progress_fn = progress_fn

    def state_dict(self) -> dict[str, int]:
        return self.order.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.order.load_state_dict(state)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        yield from self.fetch_clock.timed(super().__iter__())
