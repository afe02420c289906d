"""Batches made on the accelerator: the whole uint8 dataset lives on the device and each batch is gathered,
cropped, flipped and normalised there (as airbench does); order, shards, resume and seeds are `EpochSampler`'s."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from resnet_exp.data.policies import BatchPolicies, seeded
from resnet_exp.data.resumable import EpochSampler, FetchClock
from resnet_exp.data.transforms import AugmentParams, Normalizer, augment


class GpuLoader:
    """An iterable of `(float32 normalised images, int64 labels)` batches, all on `images.device`
    (labels are float soft targets when `policies` mix images)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor | None,
                 batch_size: int, normalizer: Normalizer, aug: AugmentParams = AugmentParams(),
                 shuffle: bool = False, drop_last: bool = False, seed: int = 0, rank: int = 0,
                 world_size: int = 1, epoch_fn: Callable[[], int] | None = None,
                 progress_fn: Callable[[], int] | None = None, policies: BatchPolicies | None = None) -> None:
        self.images, self.labels, self.policies = images, labels, policies or BatchPolicies()
        self.batch_size, self.normalizer, self.aug = batch_size, normalizer, aug
        self.indices = (torch.arange(images.shape[0], device=images.device) if indices is None
                        else indices.to(device=images.device, dtype=torch.long))
        self.order = EpochSampler(self.indices.numel(), batch_size, seed, rank, world_size, drop_last, shuffle,
                                  epoch_fn, progress_fn)
        self.fetch_clock = FetchClock()

    def __len__(self) -> int:
        return self.order.num_batches()

    def state_dict(self) -> dict[str, int]:
        return self.order.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.order.load_state_dict(state)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.fetch_clock.timed(self._batches())

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        device, order = self.images.device, self.order
        epoch = order.epoch = order.current_epoch()
        shard = self.indices[order.shard(epoch, device)]
        aug_gen = torch.Generator(device=device).manual_seed(order.rank_seed(epoch))
        skip = order.skip(epoch)
        order.epoch += 1  # without a trainer, each pass is the next epoch
        for i in range(len(self)):
            idx = shard[i * self.batch_size:(i + 1) * self.batch_size]
            x = augment(self.images[idx], self.aug, generator=aug_gen)
            if i < skip:  # a batch trained before the checkpoint: its draws are made, so the rest stay the same
                continue
            # Made inside the seeded block, handed out after it: the training step must not draw from its seed.
            with seeded(order.batch_seed(epoch, i) if self.policies.active else None):
                batch = self.policies(x, self.labels[idx], self.normalizer)
            yield batch
