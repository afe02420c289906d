"""A deterministic, learnable stand-in dataset for offline work and tests: each image is its class's
pattern (a few random low-frequency plane waves per channel), circularly shifted by up to 1/8 of the
size, plus Gaussian pixel noise. Same arguments, same bytes, on every machine."""

from __future__ import annotations

import math

import numpy as np
import torch

from resnet_exp.data.formats import Arrays


def _patterns(num_classes: int, channels: int, size: int, gen: torch.Generator, waves: int = 3) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) / size
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    freq = torch.randint(1, 4, (num_classes, channels, waves, 2), generator=gen).double()
    phase = torch.rand(num_classes, channels, waves, generator=gen, dtype=torch.float64) * 2 * math.pi
    amp = torch.rand(num_classes, channels, waves, generator=gen, dtype=torch.float64) + 0.5
    arg = 2 * math.pi * (freq[..., 0, None, None] * yy + freq[..., 1, None, None] * xx) + phase[..., None, None]
    pat = (amp[..., None, None] * torch.sin(arg)).sum(dim=2)
    # A class-specific brightness per channel makes the classes separable by colour as well.
    pat = pat / pat.std(dim=(-2, -1), keepdim=True) + (torch.rand(num_classes, channels, 1, 1, generator=gen,
                                                                   dtype=torch.float64) * 2 - 1)
    return pat  # (K, C, S, S), roughly unit contrast


def _images(pat: torch.Tensor, n: int, noise: float, gen: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    k, c, s, _ = pat.shape
    labels = torch.arange(n) % k
    labels = labels[torch.randperm(n, generator=gen)]
    max_shift = max(1, s // 8)
    shift = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=gen)
    ar = torch.arange(s)
    rows = (ar[None, :] - shift[:, :1]) % s  # (n, s)
    cols = (ar[None, :] - shift[:, 1:]) % s
    out = np.empty((n, c, s, s), dtype=np.uint8)
    for start in range(0, n, 2048):
        sl = slice(start, start + 2048)
        base = pat[labels[sl]]  # (b, C, S, S)
        base = base.gather(2, rows[sl, None, :, None].expand(-1, c, -1, s))
        base = base.gather(3, cols[sl, None, None, :].expand(-1, c, s, -1))
        noisy = base + noise * torch.randn(base.shape, generator=gen, dtype=torch.float64)
        out[sl] = (128 + 40 * noisy).round().clamp(0, 255).to(torch.uint8).numpy()
    return out, labels.numpy().astype(np.int64)


def make_synthetic(num_classes: int = 10, in_channels: int = 3, image_size: int = 32, train_size: int = 5000,
                   test_size: int = 1000, noise: float = 0.5, seed: int = 0) -> Arrays:
    """Generate the dataset (uint8 NCHW images, int64 labels); deterministic in its arguments."""
    pat = _patterns(num_classes, in_channels, image_size, torch.Generator().manual_seed(seed))
    train_x, train_y = _images(pat, train_size, noise, torch.Generator().manual_seed(seed * 1000 + 1))
    test_x, test_y = _images(pat, test_size, noise, torch.Generator().manual_seed(seed * 1000 + 2))
    return Arrays(train_x, train_y, test_x, test_y, [f"class_{i}" for i in range(num_classes)])
