"""Schema of the `data` group: which dataset, where its files are, how it is split, augmented, loaded.

The YAML options in conf/data/ extend these dataclasses (`/schema/data/image@_here_` or
`/schema/data/synthetic@_here_`), so Hydra rejects unknown keys, wrong types and bad enum values
while composing; `__post_init__` checks ranges when the config is validated (`OmegaConf.to_object`)
with the data layer's own rules (`resnet_exp.data.options`, which `ImageDataModule` applies too).
Checks that need the dataset itself (e.g. `val_size` larger than the train split) are made by
`resnet_exp.data.ImageDataModule`.
"""

from __future__ import annotations

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, SI

from resnet_exp.data.options import (
    SYNTHETIC,
    SYNTHETIC_KEYS,
    Augment,
    DatasetName,
    Loader,
    Normalize,
    SyntheticOptions,
    check_batch_augment,
    check_loading,
)
from resnet_exp.errors import require


@dataclass
class DataConfig:
    _target_: str = "resnet_exp.data.ImageDataModule"
    name: DatasetName = MISSING
    # Where the original files (or archives) are looked for, downloaded to, and cached.
    data_dir: str = "${paths.data_dir}"
    batch_size: int = 128
    # Batch size for validation and test; null = batch_size.
    eval_batch_size: int | None = None
    # DataLoader worker processes (loader=torch only).
    # At most 4, and no more than this machine's cores (${cpu_workers:N} = min(N, cores)).
    num_workers: int = SI("${cpu_workers:4}")
    # Images held out from the official train split for validation (fixed by split_seed); 0 = none.
    val_size: int = 5000
    # With val_size=0: validate on the official test split (off by default: test stays untouched).
    val_on_test: bool = False
    # standard | none | trivialaugment | randaugment | autoaugment (the policies come after standard)
    augment: Augment = Augment.standard
    # Probability per training image of a random box set to 0 after normalisation; 0 = off.
    random_erasing: float = 0.0
    # MixUp / CutMix per training batch with lambda ~ Beta(alpha, alpha); 0 = off; both > 0: one of
    # them per batch, each with probability 1/2. Targets become soft (summing to 1).
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    normalize: Normalize = Normalize.dataset
    # Zero padding of the random crop; null = the dataset's default (4 px at 32 px, scaled with resize).
    crop_padding: int | None = None
    # Random horizontal flip in `standard`; null = the dataset's default (on, off for Fashion-MNIST).
    hflip: bool | None = None
    # Resize every image to this many pixels (square, bilinear, antialiased) before augmentation.
    resize: int | None = None
    # Try the official mirror when no local copy is found.
    download: bool = True
    loader: Loader = Loader.auto
    # Seed of the train/validation holdout, independent of the global seed.
    split_seed: int = 0
    # loader=torch: pin host memory when training on CUDA; keep workers alive between epochs.
    pin_memory: bool = True
    persistent_workers: bool = True

    def __post_init__(self) -> None:
        check_loading(data_dir=self.data_dir, batch_size=self.batch_size, eval_batch_size=self.eval_batch_size,
                      num_workers=self.num_workers, val_size=self.val_size, crop_padding=self.crop_padding,
                      resize=self.resize)
        check_batch_augment(random_erasing=self.random_erasing, mixup_alpha=self.mixup_alpha,
                            cutmix_alpha=self.cutmix_alpha)


@dataclass
class SyntheticDataConfig(DataConfig):
    name: DatasetName = DatasetName.synthetic
    val_size: int = 500
    # The generated dataset's own keys (defaults and meaning: resnet_exp.data.options.SyntheticOptions).
    num_classes: int = SYNTHETIC.num_classes
    in_channels: int = SYNTHETIC.in_channels
    image_size: int = SYNTHETIC.image_size
    train_size: int = SYNTHETIC.train_size
    test_size: int = SYNTHETIC.test_size
    noise: float = SYNTHETIC.noise
    seed: int = SYNTHETIC.seed
    download: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.name == DatasetName.synthetic, "name", getattr(self.name, "value", self.name),
                 "must be synthetic with the synthetic schema")
        SyntheticOptions(**{k: getattr(self, k) for k in SYNTHETIC_KEYS})  # raises on a bad value


def register(cs: ConfigStore) -> None:
    cs.store(group="schema/data", name="image", node=DataConfig)
    cs.store(group="schema/data", name="synthetic", node=SyntheticDataConfig)
