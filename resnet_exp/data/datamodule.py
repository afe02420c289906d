"""One LightningDataModule for every dataset (`name`): CIFAR-10/100, Fashion-MNIST, synthetic."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from resnet_exp.data import options, sources
from resnet_exp.data.gpu_loader import GpuLoader
from resnet_exp.data.policies import BatchPolicies
from resnet_exp.data.resumable import EpochSampler, ResumableLoader
from resnet_exp.data.specs import SPECS, channel_stats, make_synthetic, synthetic_spec
from resnet_exp.data.transforms import AugmentParams, BatchTransform, Normalizer, resize_uint8
from resnet_exp.data.workers import capped_workers, init_worker
from resnet_exp.errors import in_group, parse_enum, require

log = logging.getLogger(__name__)


@dataclasses.dataclass(eq=False)
class _UInt8Dataset(Dataset):
    """Indexable uint8 images + labels; `__getitems__` fetches a whole batch with one gather."""

    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor

    def __len__(self) -> int:
        return self.indices.numel()

    def __getitems__(self, batch: list):
        seeded = bool(batch) and isinstance(batch[0], tuple)  # (index, batch seed) pairs from EpochSampler
        j = self.indices[torch.as_tensor([i for i, _ in batch] if seeded else batch, dtype=torch.long)]
        return (self.images[j], self.labels[j], batch[0][1]) if seeded else (self.images[j], self.labels[j])


class ImageDataModule(pl.LightningDataModule):
    """Train (minus a fixed validation holdout), validation and official test splits of one dataset:
    float32 NCHW images, normalised, and int64 labels (soft targets in training with MixUp/CutMix). Its
    shape and classes are known on construction; `prepare_data()` fetches the files, `setup()` splits."""

    def __init__(self, name: str, data_dir: str = "data", batch_size: int = 128, eval_batch_size: int | None = None,
                 num_workers: int = 4, val_size: int = 5000, val_on_test: bool = False, augment: str = "standard",
                 random_erasing: float = 0.0, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0,
                 normalize: str = "dataset", crop_padding: int | None = None, hflip: bool | None = None,
                 resize: int | None = None, download: bool = True, loader: str = "auto", split_seed: int = 0,
                 pin_memory: bool = True, persistent_workers: bool = True, num_classes: int | None = None,
                 in_channels: int | None = None, image_size: int | None = None, train_size: int | None = None,
                 test_size: int | None = None, noise: float | None = None, seed: int | None = None):
        super().__init__()
        with in_group("data"):  # the rules are data/options.py's (the config schema's too)
            dataset = parse_enum(options.DatasetName, "name", name)
            augment = parse_enum(options.Augment, "augment", augment).value
            self.loader = parse_enum(options.Loader, "loader", loader).value
            normalize = parse_enum(options.Normalize, "normalize", normalize).value
            options.check_loading(data_dir=data_dir, batch_size=batch_size, eval_batch_size=eval_batch_size,
                                  num_workers=num_workers, val_size=val_size, crop_padding=crop_padding, resize=resize)
            options.check_batch_augment(random_erasing=random_erasing, mixup_alpha=mixup_alpha,
                                        cutmix_alpha=cutmix_alpha)
            synthetic = options.synthetic_options(dataset, {
                "num_classes": num_classes, "in_channels": in_channels, "image_size": image_size,
                "train_size": train_size, "test_size": test_size, "noise": noise, "seed": seed})
        spec = SPECS[dataset.value] if synthetic is None else synthetic_spec(synthetic)
        self.synthetic = dataclasses.asdict(synthetic) if synthetic is not None else None
        self.name, self.data_dir, self.download = spec.name, Path(data_dir).expanduser(), download
        self.batch_size, self.eval_batch_size, self.val_size = batch_size, eval_batch_size or batch_size, val_size
        self._check_split(spec.train_count)
        self.num_workers, self.val_on_test, self.split_seed = capped_workers(num_workers), val_on_test, split_seed
        self.pin_memory, self.persistent_workers, self.resize = pin_memory, persistent_workers, resize
        self.num_classes, self.in_channels = spec.num_classes, spec.in_channels
        self.class_names: list[str] = list(spec.class_names)
        self.image_size: int = resize or spec.image_size
        padding = spec.crop_padding * self.image_size // spec.image_size if crop_padding is None else crop_padding
        flip = spec.flip if hflip is None else hflip
        self.augment_params = AugmentParams(padding, flip) if augment != "none" else AugmentParams()
        self.policies = BatchPolicies(augment if augment not in ("standard", "none") else None, random_erasing,
                                      mixup_alpha, cutmix_alpha, spec.num_classes)
        stats = options.NORMALIZE_STATS[normalize]  # None: the dataset's (synthetic: computed in setup())
        self.mean, self.std = (spec.mean, spec.std) if stats is None else [(v,) * spec.in_channels for v in stats]
        self._arrays = self._tensors = self.normalizer = None
        self._device_tensors: dict = {}

    @property
    def example_input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.image_size, self.image_size)

    def _check_split(self, n_train: int) -> None:
        with in_group("data"):
            require(self.val_size < n_train, "val_size", self.val_size,
                    f"must be smaller than the {n_train} images of the {self.name} train split")
            left = n_train - self.val_size
            require(left >= self.batch_size, "batch_size", self.batch_size,
                    f"larger than the {left} training images left after data.val_size={self.val_size}")

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
        self._check_split(arrays.train_x.shape[0])  # the files may hold fewer images than the usual count
        if self.mean is None:
            self.mean, self.std = channel_stats(arrays.train_x)
        self.normalizer = Normalizer(self.mean, self.std)
        t = {key: torch.from_numpy(getattr(arrays, key)) for key in ("train_x", "train_y", "test_x", "test_y")}
        if self.resize:
            t["train_x"], t["test_x"] = resize_uint8(t["train_x"], self.resize), resize_uint8(t["test_x"], self.resize)
        t["train_idx"], t["val_idx"] = map(torch.from_numpy, split_indices(len(t["train_y"]), self.val_size,
                                                                           self.split_seed))
        self._tensors = t
        log.info("%s: %d train, %d validation, %d test images of %s in %.2f s", self.name, len(t["train_idx"]),
                 len(t["val_idx"]), len(t["test_y"]), self.example_input_shape, time.perf_counter() - start)

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
        t, trainer, part = self._tensors, self.trainer, "test" if split == "test" else "train"
        images, labels, indices = t[f"{part}_x"], t[f"{part}_y"], t.get(f"{split}_idx")  # test: all images
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
            key = (str(device), part)
            if key not in self._device_tensors:
                self._device_tensors[key] = (images.to(device), labels.to(device))
            return GpuLoader(*self._device_tensors[key], indices, batch_size, self.normalizer, aug, shuffle=train,
                             drop_last=train, seed=seed, rank=rank, world_size=world, epoch_fn=epoch_fn,
                             progress_fn=progress_fn, policies=policies)
        workers = self.num_workers
        dataset = _UInt8Dataset(images, labels, torch.arange(images.shape[0]) if indices is None else indices)
        loader_options = dict(batch_size=batch_size, drop_last=train, num_workers=workers,
                              collate_fn=BatchTransform(self.normalizer, aug, train=train, policies=policies),
                              pin_memory=self.pin_memory and self._device().type == "cuda",
                              persistent_workers=self.persistent_workers and workers > 0,
                              worker_init_fn=partial(init_worker, parent=os.getpid(), rank=rank) if workers else None)
        if not train:
            return DataLoader(dataset, **loader_options)
        sampler = EpochSampler(len(dataset), batch_size, seed, rank, world, drop_last=True, epoch_fn=epoch_fn)
        return ResumableLoader(dataset, sampler=sampler, progress_fn=progress_fn, **loader_options)

    def train_dataloader(self):
        return self._make_loader("train", train=True)

    def val_dataloader(self):
        if self.val_size > 0:
            return self._make_loader("val", train=False)
        return self._make_loader("test", train=False) if self.val_on_test else []  # []: Lightning skips validation

    def test_dataloader(self):
        return self._make_loader("test", train=False)


def split_indices(n_train: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed holdout: a seeded permutation of the train split; returns sorted (train, val) indices."""
    perm = np.random.default_rng(seed).permutation(n_train)
    return np.sort(perm[val_size:]), np.sort(perm[:val_size])
