"""Facts about each dataset: shape, counts, class names, and the normalisation statistics: per channel,
over every pixel of the official train split, in [0, 1] units, population std (the widely copied CIFAR-10
std 0.2023/0.1994/0.2010 is the mean of per-image stds). `tests/test_data_real.py` recomputes Fashion-MNIST's.
Also the synthetic stand-in dataset, generated: same arguments, same bytes, on every machine."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.datasets import FashionMNIST

from resnet_exp.data.options import SyntheticOptions

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_CLASSES = tuple("""
    apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can
    castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin
    elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster
    man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck
    pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk
    skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger
    tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm""".split())
FASHION_MNIST_CLASSES = tuple(FashionMNIST.classes)


@dataclass
class Arrays:
    """A decoded dataset: uint8 images (N, C, H, W) and int64 labels, official train and test."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    class_names: list[str]


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset's facts; `crop_padding` and `flip` are what its `standard` augmentation does."""

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    train_count: int
    test_count: int
    class_names: tuple[str, ...]
    mean: tuple[float, ...] | None  # None: computed from the train split (synthetic)
    std: tuple[float, ...] | None
    crop_padding: int = 4  # at the native size
    flip: bool = True


SPECS = {
    "cifar10": DatasetSpec("cifar10", 10, 3, 32, 50000, 10000, CIFAR10_CLASSES,
                           (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": DatasetSpec("cifar100", 100, 3, 32, 50000, 10000, CIFAR100_CLASSES,
                            (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    # Clothes are not left/right symmetric in the way that matters here; the usual recipe only crops.
    "fashion_mnist": DatasetSpec("fashion_mnist", 10, 1, 28, 60000, 10000, FASHION_MNIST_CLASSES,
                                 (0.28604,), (0.35302,), flip=False),
}


def synthetic_spec(o: SyntheticOptions) -> DatasetSpec:
    """The spec of a synthetic dataset with these options."""
    return DatasetSpec("synthetic", o.num_classes, o.in_channels, o.image_size, o.train_size, o.test_size,
                       tuple(f"class_{i}" for i in range(o.num_classes)), None, None, max(1, o.image_size // 8))


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std in [0, 1] units of a uint8 (N, C, H, W) array."""
    # From each channel's histogram of the 256 values: exact sums, and no float copy of the images.
    hist = np.stack([np.bincount(images[:, c].ravel(), minlength=256) for c in range(images.shape[1])])
    values, count = np.arange(256, dtype=np.float64), hist[0].sum()
    mean = hist @ values / count
    std = np.sqrt(np.maximum(hist @ values ** 2 / count - mean ** 2, 0.0))
    return tuple(float(m / 255) for m in mean), tuple(float(s / 255) for s in std)


# --- the synthetic dataset: each image is its class's pattern (a few random low-frequency plane waves per
# channel), circularly shifted by up to 1/8 of the size, plus Gaussian pixel noise.

def _patterns(num_classes: int, channels: int, size: int, gen: torch.Generator, waves: int = 3) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) / size
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    freq = torch.randint(1, 4, (num_classes, channels, waves, 2), generator=gen).double()
    phase = torch.rand(num_classes, channels, waves, generator=gen, dtype=torch.float64) * 2 * math.pi
    amp = torch.rand(num_classes, channels, waves, generator=gen, dtype=torch.float64) + 0.5
    arg = 2 * math.pi * (freq[..., 0, None, None] * yy + freq[..., 1, None, None] * xx) + phase[..., None, None]
    pat = (amp[..., None, None] * torch.sin(arg)).sum(dim=2)
    # A class-specific brightness per channel makes the classes separable by colour as well.
    brightness = torch.rand(num_classes, channels, 1, 1, generator=gen, dtype=torch.float64) * 2 - 1
    return pat / pat.std(dim=(-2, -1), keepdim=True) + brightness  # (K, C, S, S), roughly unit contrast


def _images(pat: torch.Tensor, n: int, noise: float, gen: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    k, c, s, _ = pat.shape
    labels = (torch.arange(n) % k)[torch.randperm(n, generator=gen)]
    max_shift = max(1, s // 8)
    shift = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=gen)
    rows = (torch.arange(s)[None, :] - shift[:, :1]) % s  # (n, s)
    cols = (torch.arange(s)[None, :] - shift[:, 1:]) % s
    out = np.empty((n, c, s, s), dtype=np.uint8)
    for start in range(0, n, 2048):
        sl = slice(start, start + 2048)
        base = pat[labels[sl]].gather(2, rows[sl, None, :, None].expand(-1, c, -1, s))  # (b, C, S, S)
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
