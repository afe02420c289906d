"""Schema of the `data` group: which dataset, where its files are, how it is split, augmented, loaded.

The YAML options in conf/data/ extend these dataclasses (`/schema/data/image@_here_` or
`/schema/data/synthetic@_here_`), so Hydra rejects unknown keys, wrong types and bad enum values
while composing; `__post_init__` checks ranges when the config is validated (`OmegaConf.to_object`).
Checks that need the dataset itself (e.g. `val_size` larger than the train split) are made by
`resnet_exp.data.ImageDataModule`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, SI

from resnet_exp.config.checks import require


class DatasetName(str, Enum):
    cifar10 = "cifar10"
    cifar100 = "cifar100"
    fashion_mnist = "fashion_mnist"
    synthetic = "synthetic"


class Augment(str, Enum):
    """Training augmentation preset; evaluation never augments."""

    standard = "standard"  # random crop from a zero-padded image (+ horizontal flip unless Fashion-MNIST)
    none = "none"


class Normalize(str, Enum):
    """How uint8 pixels become floats."""

    dataset = "dataset"  # (x/255 - mean) / std with the dataset's train-split statistics
    unit = "unit"  # x/255, in [0, 1] (Keras tutorials, seed 003)
    centered = "centered"  # x/255 - 0.5, in [-0.5, 0.5] (seed 004)


class Loader(str, Enum):
    """How batches are made: `gpu` keeps the uint8 dataset on the device, `torch` uses DataLoader workers."""

    auto = "auto"  # gpu when the trainer's root device is CUDA, else torch
    torch = "torch"
    gpu = "gpu"


@dataclass
class DataConfig:
    _target_: str = "resnet_exp.data.ImageDataModule"
    name: DatasetName = MISSING
    # Where the original files (or archives) are looked for, downloaded to, and cached.
    data_dir: str = "${paths.data_dir}"
    batch_size: int = 128
    # Batch size for validation and test; null = batch_size.
    eval_batch_size: Optional[int] = None
    # DataLoader worker processes (loader=torch only).
    # At most 4, and no more than this machine's cores (${cpu_workers:N} = min(N, cores)).
    num_workers: int = SI("${cpu_workers:4}")
    # Images held out from the official train split for validation (fixed by split_seed); 0 = none.
    val_size: int = 5000
    # With val_size=0: validate on the official test split (off by default: test stays untouched).
    val_on_test: bool = False
    augment: Augment = Augment.standard
    normalize: Normalize = Normalize.dataset
    # Zero padding of the random crop; null = the dataset's default (4 px at 32 px, scaled with resize).
    crop_padding: Optional[int] = None
    # Resize every image to this many pixels (square, bilinear, antialiased) before augmentation.
    resize: Optional[int] = None
    # Try the official mirror when no local copy is found.
    download: bool = True
    loader: Loader = Loader.auto
    # Seed of the train/validation holdout, independent of the global seed.
    split_seed: int = 0
    # loader=torch: pin host memory when training on CUDA; keep workers alive between epochs.
    pin_memory: bool = True
    persistent_workers: bool = True

    def __post_init__(self) -> None:
        require(self.batch_size > 0, "batch_size", self.batch_size, "must be > 0")
        require(self.eval_batch_size is None or self.eval_batch_size > 0, "eval_batch_size",
                 self.eval_batch_size, "must be > 0 or null (= batch_size)")
        require(self.num_workers >= 0, "num_workers", self.num_workers,
                 "must be >= 0 (0 = load in the main process)")
        require(self.val_size >= 0, "val_size", self.val_size, "must be >= 0 (0 = no validation holdout)")
        require(self.crop_padding is None or self.crop_padding >= 0, "crop_padding", self.crop_padding,
                 "must be >= 0 or null (= dataset default)")
        require(self.resize is None or 8 <= self.resize <= 1024, "resize", self.resize,
                 "must be null (native size) or between 8 and 1024 pixels")
        require(bool(str(self.data_dir).strip()), "data_dir", repr(self.data_dir), "must be a directory path")


@dataclass
class SyntheticDataConfig(DataConfig):
    name: DatasetName = DatasetName.synthetic
    val_size: int = 500
    num_classes: int = 10
    in_channels: int = 3
    image_size: int = 32
    train_size: int = 5000
    test_size: int = 1000
    # Std of the per-pixel Gaussian noise, in units of the class pattern's contrast (higher = harder).
    noise: float = 0.5
    # Seed of the generated images (independent of the global seed and of split_seed).
    seed: int = 0
    download: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.name == DatasetName.synthetic, "name", getattr(self.name, "value", self.name),
                 "must be synthetic with the synthetic schema")
        require(2 <= self.num_classes <= 1000, "num_classes", self.num_classes, "must be between 2 and 1000")
        require(self.in_channels in (1, 3), "in_channels", self.in_channels, "must be 1 or 3")
        require(8 <= self.image_size <= 512, "image_size", self.image_size, "must be between 8 and 512")
        require(self.train_size > 0, "train_size", self.train_size, "must be > 0")
        require(self.test_size > 0, "test_size", self.test_size, "must be > 0")
        require(self.noise >= 0, "noise", self.noise, "must be >= 0")


def register(cs: ConfigStore) -> None:
    cs.store(group="schema/data", name="image", node=DataConfig)
    cs.store(group="schema/data", name="synthetic", node=SyntheticDataConfig)
