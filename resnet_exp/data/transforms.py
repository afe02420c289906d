"""Augmentation and normalisation as batch operations on uint8 NCHW tensors, shared by both loader paths
(the torch path in its workers, the gpu path on the device), so both make the same distribution of images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from resnet_exp.data.policies import BatchPolicies, seeded


@dataclass(frozen=True)
class AugmentParams:
    """What `standard` does for a dataset at a given size; padding 0 and flip False = no augmentation."""

    padding: int = 0
    flip: bool = False

    @property
    def active(self) -> bool:
        return self.padding > 0 or self.flip


def crop_flip(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor, padding: int) -> torch.Tensor:
    """Crop each image of `x` (B, C, H, W) at (dy, dx) out of its zero-padded version, then flip some."""
    b, c, h, w = x.shape
    rows = torch.arange(h, device=x.device)[None, :] + (dy[:, None] - padding)  # (B, H) source rows
    cols = torch.arange(w, device=x.device)[None, :] + (dx[:, None] - padding)  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]  # (B, H, W)
    index = rows.clamp(0, h - 1)[:, :, None] * w + cols.clamp(0, w - 1)[:, None, :]
    out = torch.gather(x.reshape(b, c, h * w), 2, index.reshape(b, 1, h * w).expand(b, c, h * w))
    out = out.reshape(b, c, h, w)
    return out * valid[:, None].to(out.dtype) if padding > 0 else out


def augment(x: torch.Tensor, aug: AugmentParams, generator: torch.Generator | None = None) -> torch.Tensor:
    """`standard` on a batch: crop offsets in [0, 2*padding] and flips drawn per image (`x` if `aug` is off)."""
    if not aug.active:
        return x
    b, device = x.shape[0], x.device
    dy, dx = torch.randint(0, 2 * aug.padding + 1, (2, b), device=device, generator=generator)
    if aug.flip:
        flip = torch.randint(0, 2, (b,), device=device, generator=generator).bool()
    else:
        flip = torch.zeros(b, dtype=torch.bool, device=device)
    return crop_flip(x, dy, dx, flip, aug.padding)


class Normalizer:
    """uint8 -> float32 `(x / 255 - mean) / std` per channel, with the constants cached per device."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean, self.std = tuple(map(float, mean)), tuple(map(float, std))
        self._cache: dict = {}

    def __getstate__(self):  # picklable for worker processes; the device cache is rebuilt there
        return {**self.__dict__, "_cache": {}}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.device not in self._cache:
            scale = [1 / (255 * s) for s in self.std]
            shift = [-m / s for m, s in zip(self.mean, self.std)]
            self._cache[x.device] = [torch.tensor(v, device=x.device).view(1, -1, 1, 1) for v in (scale, shift)]
        scale, shift = self._cache[x.device]
        return x.float().mul_(scale).add_(shift)


class BatchTransform:
    """Augment (if training) and normalise a uint8 batch; used as the DataLoader's collate_fn."""

    def __init__(self, normalizer: Normalizer, aug: AugmentParams, train: bool, policies: BatchPolicies | None = None):
        self.normalizer = normalizer
        self.aug = aug if train else AugmentParams()
        self.policies = policies if train and policies is not None else BatchPolicies()

    def __call__(self, batch):
        x, y, *seed = batch
        # A seeded batch (training, EpochSampler) draws crop, flip and policies from its seed, in any
        # process and after any resume; otherwise the process's global generator draws.
        with seeded(seed[0] if seed and (self.aug.active or self.policies.active) else None):
            return self.policies(augment(x, self.aug), y, self.normalizer)


def resize_uint8(x: torch.Tensor, size: int, chunk: int = 2048) -> torch.Tensor:
    """Resize a uint8 NCHW tensor to size x size (bilinear, antialiased), in chunks to bound memory."""
    if x.shape[-2:] == (size, size):
        return x
    out = torch.empty((*x.shape[:2], size, size), dtype=torch.uint8, device=x.device)
    for start in range(0, x.shape[0], chunk):
        block = F.interpolate(x[start:start + chunk].float(), size=(size, size), mode="bilinear", antialias=True)
        out[start:start + chunk] = block.round_().clamp_(0, 255).to(torch.uint8)
    return out
