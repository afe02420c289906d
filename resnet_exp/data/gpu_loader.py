"""Batches made on the accelerator: the whole uint8 dataset lives on the device and each batch is
gathered, cropped, flipped and normalised there (as airbench does). No worker processes.

Shuffling uses a generator seeded from (seed, epoch), identical on every DDP rank, so the ranks
split one permutation into disjoint shards; augmentation randomness differs per rank.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from resnet_exp.data.resumable import FetchClock, ResumePoint, epoch_seed
from resnet_exp.data.transforms import AugmentParams, Normalizer, augment, sample_params


class GpuLoader:
    """An iterable of `(float32 normalised images, int64 labels)` batches, all on `images.device`."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor | None,
                 batch_size: int, normalizer: Normalizer, aug: AugmentParams = AugmentParams(),
                 shuffle: bool = False, drop_last: bool = False, seed: int = 0, rank: int = 0,
                 world_size: int = 1, epoch_fn: Callable[[], int] | None = None,
                 progress_fn: Callable[[], int] | None = None):
        self.images, self.labels = images, labels
        device = images.device
        self.indices = (torch.arange(images.shape[0], device=device) if indices is None
                        else indices.to(device=device, dtype=torch.long))
        self.batch_size, self.normalizer, self.aug = batch_size, normalizer, aug
        self.shuffle, self.drop_last = shuffle, drop_last
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        # The trainer's epoch when there is one (so a resumed run continues the same sequence).
        self.epoch_fn = epoch_fn
        # Mid-epoch resume (state in every checkpoint) and the host time of making each batch.
        self.resume = ResumePoint(epoch_fn, progress_fn)
        self.fetch_clock = FetchClock()

    def _shard_size(self) -> int:
        n = self.indices.numel()
        if self.drop_last:
            return n // self.world_size  # every rank gets the same number; the remainder rotates out
        return len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        size = self._shard_size()
        return size // self.batch_size if self.drop_last else -(-size // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def state_dict(self) -> dict[str, int]:
        return self.resume.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.resume.load_state_dict(state)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.fetch_clock.timed(self._batches())

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        device = self.images.device
        if self.epoch_fn is not None:
            self.epoch = self.epoch_fn()
        order = self.indices
        if self.shuffle:
            gen = torch.Generator(device=device).manual_seed(epoch_seed(self.seed, self.epoch))
            order = order[torch.randperm(order.numel(), generator=gen, device=device)]
        shard = order[self.rank::self.world_size][: self._shard_size()]
        aug_gen = torch.Generator(device=device).manual_seed(
            epoch_seed(self.seed, self.epoch) * 1009 + self.rank + 1)
        skip = self.resume.skip(self.epoch, len(self))
        self.epoch += 1
        for i in range(skip):  # draw what the skipped batches drew: the rest stays the same
            if self.aug.active:
                sample_params(min(self.batch_size, shard.numel() - i * self.batch_size), self.aug, device, aug_gen)
        for i in range(skip, len(self)):
            idx = shard[i * self.batch_size:(i + 1) * self.batch_size]
            x = self.images[idx]
            if self.aug.active:
                x = augment(x, self.aug, generator=aug_gen)
            yield self.normalizer(x), self.labels[idx]
