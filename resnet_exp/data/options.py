"""The options of the data layer and their rules, free of torch and Hydra: `ImageDataModule` and the
`data` config schema check with the same functions, so both say the same one-line `key=value: allowed`."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

from resnet_exp.errors import require, str_enum

DatasetName = str_enum("DatasetName", "cifar10 cifar100 fashion_mnist synthetic", __name__)
# Training augmentation: `standard` crops a zero-padded image (and flips it, unless Fashion-MNIST); each
# torchvision v2 policy (policies.py) comes after `standard`. Evaluation never augments.
Augment = str_enum("Augment", "standard none trivialaugment randaugment autoaugment", __name__)
# How uint8 pixels become floats: `(x/255 - mean) / std` with NORMALIZE_STATS.
Normalize = str_enum("Normalize", "dataset unit centered symmetric", __name__)
# (mean, std) per channel, in [0, 1] units: dataset = the train split's statistics (None), unit = x/255 in
# [0, 1], centered = x/255 - 0.5 in [-0.5, 0.5], symmetric = (x/255 - 0.5) / 0.5 in [-1, 1].
NORMALIZE_STATS = {"dataset": None, "unit": (0.0, 1.0), "centered": (0.5, 1.0), "symmetric": (0.5, 0.5)}
# How batches are made: `gpu` keeps the uint8 dataset on the device, `torch` uses DataLoader workers,
# `auto` is gpu when the trainer's root device is CUDA, else torch.
Loader = str_enum("Loader", "auto torch gpu", __name__)


def check_loading(*, data_dir: object, batch_size: int, eval_batch_size: int | None, num_workers: int,
                  val_size: int, crop_padding: int | None, resize: int | None) -> None:
    """The range rules of the options every dataset takes."""
    require(bool(str(data_dir).strip()), "data_dir", repr(data_dir), "must be a directory path")
    require(batch_size > 0, "batch_size", batch_size, "must be > 0")
    require(eval_batch_size is None or eval_batch_size > 0, "eval_batch_size", eval_batch_size,
            "must be > 0 or null (= batch_size)")
    require(num_workers >= 0, "num_workers", num_workers, "must be >= 0 (0 = load in the main process)")
    require(val_size >= 0, "val_size", val_size, "must be >= 0 (0 = no validation holdout)")
    require(crop_padding is None or crop_padding >= 0, "crop_padding", crop_padding,
            "must be >= 0 or null (= dataset default)")
    require(resize is None or 8 <= resize <= 1024, "resize", resize,
            "must be null (native size) or between 8 and 1024 pixels")


def check_batch_augment(*, random_erasing: float, mixup_alpha: float, cutmix_alpha: float) -> None:
    """The range rules of the per-batch augmentations (0 turns each off)."""
    require(0.0 <= random_erasing <= 1.0, "random_erasing", random_erasing,
            "must be a probability per image in [0, 1] (0 = off)")
    for key, alpha in (("mixup_alpha", mixup_alpha), ("cutmix_alpha", cutmix_alpha)):
        require(0.0 <= alpha < math.inf, key, alpha, "must be a finite Beta(alpha, alpha) parameter >= 0 (0 = off)")


@dataclass(frozen=True)
class SyntheticOptions:
    """The synthetic dataset's own options, with their defaults; checked on construction."""

    num_classes: int = 10
    in_channels: int = 3
    image_size: int = 32
    train_size: int = 5000
    test_size: int = 1000
    noise: float = 0.5  # std of the pixel noise, in units of the class pattern's contrast (higher = harder)
    seed: int = 0  # of the generated images (independent of the global seed and of split_seed)

    def __post_init__(self) -> None:
        require(2 <= self.num_classes <= 1000, "num_classes", self.num_classes, "must be between 2 and 1000")
        require(self.in_channels in (1, 3), "in_channels", self.in_channels, "must be 1 or 3")
        require(8 <= self.image_size <= 512, "image_size", self.image_size, "must be between 8 and 512")
        for key in ("train_size", "test_size"):
            require(getattr(self, key) > 0, key, getattr(self, key), "must be > 0")
        require(self.noise >= 0, "noise", self.noise, "must be >= 0")


SYNTHETIC = SyntheticOptions()  # the defaults
SYNTHETIC_KEYS = tuple(f.name for f in dataclasses.fields(SyntheticOptions))


def synthetic_options(name: DatasetName, given: Mapping[str, object]) -> SyntheticOptions | None:
    """The synthetic dataset's options (keys given as None take the defaults); None for a real dataset,
    which takes none of these keys."""
    set_keys = [k for k in SYNTHETIC_KEYS if given.get(k) is not None]
    for key in set_keys:
        require(name == DatasetName.synthetic, key, given[key],
                f"only the synthetic dataset takes this key, not {name.value}")
    return SyntheticOptions(**{k: given[k] for k in set_keys}) if name == DatasetName.synthetic else None
