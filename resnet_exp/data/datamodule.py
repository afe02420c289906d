"""One LightningDataModule for every dataset (`name`): CIFAR-10/100, Fashion-MNIST, synthetic."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from resnet_exp.data import options, sources
from resnet_exp.data.formats import Arrays
from resnet_exp.data.gpu_loader import GpuLoader
from resnet_exp.data.policies import BatchPolicies
from resnet_exp.data.resumable import EpochSampler, ResumableLoader
from resnet_exp.data.specs import SPECS, channel_stats, synthetic_spec
from resnet_exp.data.synthetic import make_synthetic
from resnet_exp.data.transforms import AugmentParams, BatchTransform, Normalizer, resize_uint8
from resnet_exp.data.workers import WorkerInit, capped_workers
from resnet_exp.errors import in_group, parse_enum, require

log = logging.getLogger(__name__)


class _UInt8Dataset(Dataset):
    """Indexable uint8 images + labels; `__getitems__` fetches a whole batch with one gather."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor):
        self.images, self.labels, self.indices = images, labels, indices

    def __len__(self) -> int:
        return self.indices.numel()

    def __getitems__(self, batch: list):
        if batch and isinstance(batch[0], tuple):  # (index, batch seed) pairs from EpochSampler
            j = self.indices[torch.as_tensor([i for i, _ in batch], dtype=torch.long)]
            return self.images[j], self.labels[j], batch[0][1]
        j = self.indices[torch.as_tensor(batch, dtype=torch.long)]
        return self.images[j], self.labels[j]


class ImageDataModule(pl.LightningDataModule):
    """Train (minus a fixed validation holdout), validation and official test splits of one dataset:
    float32 NCHW images, normalised, and int64 labels (soft targets in training with MixUp/CutMix). Its
    shape and classes are known on construction; `prepare_data()` fetches the files, `setup()` splits."""

    def __init__(self, name: str, data_dir: str = "data", batch_size: int = 128, eval_batch_size: int | None = None,
                 num_workers: int = 4, val_size: int = 5000, val_on_test: bool = False, augment: str = "standard",
                 random_erasing: float = 0.0, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0,
                 normalize: str = "dataset", crop_padding: int | None = None, hflip: bool | None = None,
                 resize: int | None = None,
                 download: bool = True, loader: str = "auto", split_seed: int = 0, pin_memory: bool = True,
                 persistent_workers: bool = True, num_classes: int | None = None, in_channels: int | None = None,
                 image_size: int | None = None, train_size: int | None = None, test_size: int | None = None,
                 noise: float | None = None, seed: int | None = None):
        super().__init__()
        with in_group("data"):  # the rules are data/options.py's (the config schema's too)
            dataset = parse_enum(options.DatasetName, "name", name)
            augment = parse_enum(options.Augment, "augment", augment).value
            loader = parse_enum(options.Loader, "loader", loader).value
            normalize = parse_enum(options.Normalize, "normalize", normalize).value
            options.check_loading(data_dir=data_dir, batch_size=batch_size, eval_batch_size=eval_batch_size,
                                  num_workers=num_workers, val_size=val_size, crop_padding=crop_padding, resize=resize)
            options.check_batch_augment(random_erasing=random_erasing, mixup_alpha=mixup_alpha,
                                        cutmix_alpha=cutmix_alpha)
            synthetic = options.synthetic_options(dataset, {
                "num_classes": num_classes, "in_channels": in_channels, "image_size": image_size,
                "train_size": train_size, "test_size": test_size, "noise": noise, "seed": seed})
            name = dataset.value
            spec = SPECS[name] if synthetic is None else synthetic_spec(synthetic)
            require(val_size < spec.train_count, "val_size", val_size,
                    f"must be smaller than the {spec.train_count} images of the {name} train split")
        self.synthetic = dataclasses.asdict(synthetic) if synthetic is not None else None
        self.spec, self.name, self.data_dir = spec, name, Path(data_dir).expanduser()
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers, self.val_size, self.val_on_test = capped_workers(num_workers), val_size, val_on_test
        self.download, self.loader, self.split_seed = download, loader, split_seed
        self.pin_memory, self.persistent_workers, self.resize = pin_memory, persistent_workers, resize
        self.num_classes, self.in_channels = spec.num_classes, spec.in_channels
        self.image_size: int = resize or spec.image_size
        self.class_names: list[str] = list(spec.class_names)
        padding = spec.crop_padding * self.image_size // spec.image_size if crop_padding is None else crop_padding
        flip = spec.flip if hflip is None else hflip
        self.augment_params = AugmentParams(padding, flip) if augment != "none" else AugmentParams()
        self.policies = BatchPolicies(augment if augment not in ("standard", "none") else None, random_erasing,
                                      mixup_alpha, cutmix_alpha, spec.num_classes)
        self._arrays: Arrays | None = None
        self._tensors: dict[str, torch.Tensor] | None = None
        self._device_tensors: dict = {}
        self.normalizer: Normalizer | None = None
        self.mean, self.std = spec.mean, spec.std  # None: computed from the train split in setup()
        if options.NORMALIZE_STATS[normalize] is not None:
            mean, std = options.NORMALIZE_STATS[normalize]
            self.mean, self.std = (mean,) * spec.in_channels, (std,) * spec.in_channels

    @property
    def example_input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.image_size, self.image_size)

    def prepare_data(self) -> None:
        """Find/download/decode/cache the dataset; raises a one-line DataError if it cannot be had."""
        if self.synthetic is None and self._arrays is None and not sources.is_ready(self.name, self.data_dir):
            self._arrays = sources.load(self.name, self.data_dir, self.download)

    def setup(self, stage: str | None = None) -> None:
        if self._tensors is not None:
            return
        start = time.perf_counter()
        if self._arrays is None:
            self._arrays = (make_synthetic(**self.synthetic) if self.synthetic is not None
                            else sources.load(self.name, self.data_dir, self.download))
        arrays = self._arrays
        n_train = arrays.train_x.shape[0]
        with in_group("data"):  # the files may hold fewer images than the dataset's usual count
            require(self.val_size < n_train, "val_size", self.val_size,
                    f"must be smaller than the {n_train} images of the {self.name} train split")
            left = n_train - self.val_size
            require(left >= self.batch_size, "batch_size", self.batch_size,
                    f"larger than the {left} training images left after data.val_size={self.val_size}")
        if self.mean is None:
            self.mean, self.std = channel_stats(arrays.train_x)
        self.normalizer = Normalizer(self.mean, self.std)
        train_idx, val_idx = split_indices(n_train, self.val_size, self.split_seed)
        train_x, test_x = torch.from_numpy(arrays.train_x), torch.from_numpy(arrays.test_x)
        if self.resize:
            train_x, test_x = resize_uint8(train_x, self.resize), resize_uint8(test_x, self.resize)
        self._tensors = {"train_x": train_x, "train_y": torch.from_numpy(arrays.train_y),
                         "test_x": test_x, "test_y": torch.from_numpy(arrays.test_y),
                         "train_idx": torch.from_numpy(train_idx), "val_idx": torch.from_numpy(val_idx)}
        log.info("%s: %d train, %d validation, %d test images of %s in %.2f s", self.name, train_idx.size,
                 val_idx.size, test_x.shape[0], self.example_input_shape, time.perf_counter() - start)

    def _device(self) -> torch.device:
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def loader_kind(self) -> str:
        """`gpu` or `torch`: what `loader` (auto/torch/gpu) means with the attached trainer."""
        if self.loader != "auto":
            return self.loader
        return "gpu" if self._device().type == "cuda" else "torch"

    def _make_loader(self, split: str, train: bool):
        if self._tensors is None:
            self.setup("fit" if train else "test")
        t, trainer = self._tensors, self.trainer
        images, labels = (t["test_x"], t["test_y"]) if split == "test" else (t["train_x"], t["train_y"])
        indices = {"train": t["train_idx"], "val": t["val_idx"], "test": None}[split]
        batch_size = self.batch_size if train else self.eval_batch_size
        aug, policies = (self.augment_params, self.policies) if train else (AugmentParams(), BatchPolicies())
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        epoch_fn = progress_fn = None
        if train and trainer is not None:  # what a checkpoint resumes from: the trainer's epoch and progress in it
            epoch_fn, progress_fn = (lambda: trainer.current_epoch,
                                     lambda: trainer.fit_loop.epoch_loop.batch_progress.current.processed)
        seed = torch.initial_seed() % (2 ** 31)
        if self.loader_kind() == "gpu":
            device = self._device()
            key = (str(device), split == "test")
            if key not in self._device_tensors:
                self._device_tensors[key] = (images.to(device), labels.to(device))
            images, labels = self._device_tensors[key]
            return GpuLoader(images, labels, indices, batch_size, self.normalizer, aug, shuffle=train,
                             drop_last=train, seed=seed, rank=rank, world_size=world, epoch_fn=epoch_fn,
                             progress_fn=progress_fn, policies=policies)
        workers = self.num_workers
        dataset = _UInt8Dataset(images, labels, torch.arange(images.shape[0]) if indices is None else indices)
        loader_options = dict(batch_size=batch_size, drop_last=train, num_workers=workers,
                              collate_fn=BatchTransform(self.normalizer, aug, train=train, policies=policies),
                              pin_memory=self.pin_memory and self._device().type == "cuda",
                              persistent_workers=self.persistent_workers and workers > 0,
                              worker_init_fn=WorkerInit(rank) if workers > 0 else None)
        if not train:
            return DataLoader(dataset, **loader_options)
        sampler = EpochSampler(len(dataset), batch_size, seed, rank, world, drop_last=True, epoch_fn=epoch_fn)
        return ResumableLoader(dataset, sampler=sampler, progress_fn=progress_fn, **loader_options)

    def train_dataloader(self):
        return self._make_loader("train", train=True)

    def val_dataloader(self):
        if self.val_size > 0:
            return self._make_loader("val", train=False)
        if self.val_on_test:
            return self._make_loader("test", train=False)
        return []  # no validation: Lightning skips the loop

    def test_dataloader(self):
        return self._make_loader("test", train=False)


def split_indices(n_train: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed holdout: a seeded permutation of the train split; returns sorted (train, val) indices."""
    perm = np.random.default_rng(seed).permutation(n_train)
    return np.sort(perm[val_size:]), np.sort(perm[:val_size])
