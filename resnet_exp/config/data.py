"""Schema of the `data` group (which dataset, where its files are, how it is split, augmented, loaded; README
"Data"), checked by the data layer's own rules (`resnet_exp.data.options`, which `ImageDataModule` applies
too, along with the checks that need the dataset itself, such as `val_size` larger than the train split)."""

from __future__ import annotations

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, SI

from resnet_exp.data import options
from resnet_exp.data.options import SYNTHETIC, Augment, DatasetName, Loader, Normalize
from resnet_exp.errors import require


@dataclass
class DataConfig:
    _target_: str = "resnet_exp.data.ImageDataModule"
    name: DatasetName = MISSING
    data_dir: str = "${paths.data_dir}"  # where the files (or archives) are looked for, downloaded to, cached
    batch_size: int = 128
    eval_batch_size: int | None = None  # validation and test; null = batch_size
    num_workers: int = SI("${cpu_workers:4}")  # loader=torch: at most 4, and no more than this machine's cores
    val_size: int = 5000  # train images held out for validation (fixed by split_seed); 0 = none
    val_on_test: bool = False  # with val_size=0: validate on the official test split
    augment: Augment = Augment.standard  # the policies (trivialaugment, ...) come after standard
    random_erasing: float = 0.0  # probability per training image of an erased box; 0 = off
    mixup_alpha: float = 0.0  # MixUp / CutMix per training batch, lambda ~ Beta(alpha, alpha); 0 = off
    cutmix_alpha: float = 0.0
    normalize: Normalize = Normalize.dataset
    crop_padding: int | None = None  # of the random crop; null = the dataset's (4 px at 32 px, scaled with resize)
    hflip: bool | None = None  # random flip in `standard`; null = the dataset's default (off for Fashion-MNIST)
    resize: int | None = None  # every image to this many pixels (square, bilinear, antialiased) before augmenting
    download: bool = True  # try the official mirror when no local copy is found
    loader: Loader = Loader.auto
    split_seed: int = 0  # of the train/validation holdout, independent of the global seed
    pin_memory: bool = True  # loader=torch, training on CUDA
    persistent_workers: bool = True  # loader=torch: workers alive between epochs

    def __post_init__(self) -> None:
        options.check_loading(data_dir=self.data_dir, batch_size=self.batch_size, eval_batch_size=self.eval_batch_size,
                              num_workers=self.num_workers, val_size=self.val_size, crop_padding=self.crop_padding,
                              resize=self.resize)
        options.check_batch_augment(random_erasing=self.random_erasing, mixup_alpha=self.mixup_alpha,
                                    cutmix_alpha=self.cutmix_alpha)


@dataclass
class SyntheticDataConfig(DataConfig):
    name: DatasetName = DatasetName.synthetic
    val_size: int = 500
    # The generated dataset's own keys: resnet_exp.data.options.SyntheticOptions.
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
        name = getattr(self.name, "value", self.name)
        require(self.name == DatasetName.synthetic, "name", name, "must be synthetic with the synthetic schema")
        options.SyntheticOptions(**{k: getattr(self, k) for k in options.SYNTHETIC_KEYS})  # raises on a bad value


def register(cs: ConfigStore) -> None:
    cs.store(group="schema/data", name="image", node=DataConfig)
    cs.store(group="schema/data", name="synthetic", node=SyntheticDataConfig)
