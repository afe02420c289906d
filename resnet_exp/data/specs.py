"""Facts about each dataset: shape, counts, class names, and the normalisation statistics: per channel,
over every pixel of the official train split, in [0, 1] units, population std (the widely copied CIFAR-10
std 0.2023/0.1994/0.2010 is the mean of per-image stds). `tests/test_data_real.py` recomputes Fashion-MNIST's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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


def synthetic_spec(options: SyntheticOptions) -> DatasetSpec:
    """The spec of a synthetic dataset with these options."""
    o = options
    return DatasetSpec("synthetic", o.num_classes, o.in_channels, o.image_size, o.train_size, o.test_size,
                       tuple(f"class_{i}" for i in range(o.num_classes)), None, None,
                       crop_padding=max(1, o.image_size // 8), flip=True)


def channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std in [0, 1] units of a uint8 (N, C, H, W) array."""
    n, c = images.shape[:2]
    total = np.zeros(c, np.float64)
    total_sq = np.zeros(c, np.float64)
    for start in range(0, n, chunk):
        block = images[start:start + chunk].astype(np.float64)
        total += block.sum(axis=(0, 2, 3))
        total_sq += np.square(block).sum(axis=(0, 2, 3))
    count = n * images.shape[2] * images.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 0.0))
    return tuple(float(m / 255) for m in mean), tuple(float(s / 255) for s in std)
