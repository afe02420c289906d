"""Measuring tools for the benchmarks: the framework's own fit, built exactly as `resnet_exp.run`
builds it, and plain PyTorch loops over the same model, batches and data.

Step time here is wall time per training batch over whole epochs (the first epoch is warm-up and
dropped), taken by `EpochClock`, which costs nothing per step; on CUDA it synchronizes once at
each epoch end so that the epoch's work is finished when the clock stops.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import Callback
from torch import nn

from resnet_exp import speed
from resnet_exp.config import CONF_DIR, register_schemas, validate
from resnet_exp.pipeline import Parts, build_parts
from resnet_exp.speed import synchronize

REPO_ROOT = CONF_DIR.parent


class EpochClock(Callback):
    """Host clock at every epoch start and after every training batch (device work finished at
    the epoch's start and end). Costs one perf_counter per batch. With `output_file`, each epoch
    end also writes {"loop_s": wall seconds of all training epochs so far} there (JSON)."""

    def __init__(self, output_file: str | None = None) -> None:
        self.epochs: list[list[tuple]] = []  # per epoch: [start, end of batch 1, ...] as clock()
        self.output_file = output_file

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        synchronize(pl_module.device)
        self._stamps = [clock()]

    def on_train_batch_end(self, *args: Any) -> None:
        self._stamps.append(clock())

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        synchronize(pl_module.device)
        self._stamps[-1] = clock()  # the last batch's device work included
        self.epochs.append(self._stamps)
        if self.output_file:
            write_loop_seconds(Path(self.output_file), self.epochs)


def write_loop_seconds(path: Path, epochs: Sequence[Sequence[tuple]]) -> None:
    """{"loop_s": wall seconds inside the training epochs} (EpochClock / plain_loop stamps) to `path`."""
    path.write_text(json.dumps({"loop_s": sum(stamps[-1][0] - stamps[0][0] for stamps in epochs)}))


class SyncReference(Callback):
    """The slow, obvious measurement: synchronize before and after every batch, host clock."""

    def __init__(self) -> None:
        self.ms: list[float] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        synchronize(pl_module.device)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        synchronize(pl_module.device)
        self.ms.append((time.perf_counter() - self._start) * 1e3)


def clock() -> tuple:
    """(wall seconds, CPU seconds of this process, all threads)."""
    return time.perf_counter(), time.process_time()


def step_ms(epochs: Sequence[Sequence[tuple]], skip: int = 1) -> dict[str, float]:
    """Per-batch times over the epochs after the first `skip` (warm-up) ones, in ms:
    `mean` wall time (epoch time / batches: exact also on a GPU), `median` wall time of the
    batch-to-batch periods, and `cpu` time per batch (process CPU time / batches: what the host did,
    insensitive to other processes on a shared CPU; equals wall time on an idle single-thread CPU)."""
    kept = list(epochs[skip:]) or list(epochs)
    periods = [(b[0] - a[0]) * 1e3 for stamps in kept for a, b in zip(stamps, stamps[1:])]
    wall = sum(stamps[-1][0] - stamps[0][0] for stamps in kept) * 1e3
    cpu = sum(stamps[-1][1] - stamps[0][1] for stamps in kept) * 1e3
    n = len(periods)
    return {"mean": wall / n, "median": statistics.median(periods), "cpu": cpu / n, "batches": n}


def compose_run_config(overrides: Sequence[str], output_dir: Path) -> DictConfig:
    """The config `python -m resnet_exp.run <overrides>` would get, with `output_dir` as run folder."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="benchmarks"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    validate(cfg)
    return cfg


@contextlib.contextmanager
def quiet() -> Iterable[None]:
    """Keep Lightning's banners and bars out of the benchmark's own output."""
    loggers = [logging.getLogger(n) for n in ("pytorch_lightning", "lightning_fabric", "resnet_exp")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def framework_fit(cfg: DictConfig, before_fit: Callable[[Parts], None] | None = None) -> Parts:
    """Build every part as `resnet_exp.run` does and fit; return the parts."""

    with quiet():
        parts = build_parts(cfg)
        if before_fit is not None:
            before_fit(parts)
        parts.trainer.fit(parts.module, datamodule=parts.datamodule)
    return parts


def callback(parts: Parts, name: str) -> Any:
    """The trainer's callback of class `name`."""
    return next(cb for cb in parts.trainer.callbacks if type(cb).__name__ == name)


def make_optimizer(cfg: DictConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The run's optimizer with the run's parameter groups (no weight decay on BN and biases)."""
    from hydra.utils import instantiate

    from resnet_exp.module import split_weight_decay

    groups = split_weight_decay(model, bool(cfg.module.decay_norm_and_bias))
    return instantiate(cfg.optimizer)(params=groups)


def plain_loop(model: nn.Module, optimizer: torch.optim.Optimizer, loader_fn: Callable[[], Iterable],
               epochs: int, device: torch.device, autocast_dtype: torch.dtype | None = None,
               channels_last: bool = False) -> list[list[tuple]]:
    """The textbook training loop; per epoch the clock stamps `EpochClock` takes."""
    model.train()
    criterion = nn.CrossEntropyLoss()
    out = []
    for _ in range(epochs):
        synchronize(device)
        stamps = [clock()]
        for images, labels in loader_fn():
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            if channels_last:
                images = speed.channels_last_batch(images)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=autocast_dtype or torch.float32,
                                enabled=autocast_dtype is not None):
                loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
            stamps.append(clock())
        synchronize(device)
        stamps[-1] = clock()
        out.append(stamps)
    return out


class BareClassifier(pl.LightningModule):
    """The least a LightningModule can be: forward, cross-entropy, the run's optimizer."""

    def __init__(self, model: nn.Module, cfg: DictConfig) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        return nn.functional.cross_entropy(self.model(images), labels)

    def configure_optimizers(self) -> Any:
        return make_optimizer(self.cfg, self.model)


def bare_trainer(out: Path, epochs: int, callbacks: Sequence[Callback] = ()) -> pl.Trainer:
    """A CPU Trainer with logger, checkpoints, progress bar, model summary and validation off."""
    return pl.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                      num_sanity_val_steps=0, default_root_dir=str(out), callbacks=list(callbacks))


def run_model(cfg: DictConfig, datamodule: Any) -> nn.Module:
    """A fresh copy of the run's model (same seed, same arch) for the plain loop."""
    from hydra.utils import instantiate

    pl.seed_everything(cfg.seed, workers=True)
    return instantiate(cfg.arch, num_classes=datamodule.num_classes, in_channels=datamodule.in_channels,
                       input_size=datamodule.image_size)


def torchvision_cifar(name: str, num_classes: int) -> nn.Module:
    """torchvision's ResNet in the CIFAR layout: 3x3/1 stem conv, no max-pool."""
    import torchvision

    model = getattr(torchvision.models, name)(num_classes=num_classes)
    model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    return model


class HookTimer:
    """CPU time (this thread) spent inside the hooks of one callback object."""

    BATCH_HOOKS = ("on_train_batch_start", "on_train_batch_end")
    EPOCH_HOOKS = ("on_train_epoch_start", "on_train_epoch_end", "on_validation_end", "on_train_end")

    def __init__(self, callback: Callback) -> None:
        self.seconds = {name: 0.0 for name in self.BATCH_HOOKS + self.EPOCH_HOOKS}
        self.calls = dict.fromkeys(self.seconds, 0)
        for name in self.seconds:
            setattr(callback, name, self._wrap(getattr(callback, name), name))

    def _wrap(self, hook: Callable[..., Any], name: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return hook(*args, **kwargs)
            finally:
                self.seconds[name] += time.thread_time() - start
                self.calls[name] += 1
        return timed

    def us_per_batch(self) -> float:
        """Per-batch hooks only."""
        return sum(self.seconds[n] for n in self.BATCH_HOOKS) / max(self.calls["on_train_batch_end"], 1) * 1e6

    def ms_per_epoch(self) -> float:
        """Per-epoch hooks (reading events, stats, CSV rows, logging), fit end included."""
        return sum(self.seconds[n] for n in self.EPOCH_HOOKS) / max(self.calls["on_train_epoch_end"], 1) * 1e3
