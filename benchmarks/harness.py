"""Measuring tools of the sections: the framework's fit as `resnet_exp.run` builds it, plain PyTorch and bare
Lightning loops over the same model and data, `python -m resnet_exp.bench` runs, clocks and paired statistics.
A step time is wall time per training batch over whole epochs (one perf_counter per batch; on CUDA a synchronize
at each epoch's start and end, so that the epoch's work is done when the clock stops)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.callbacks import Callback
from torch import nn

from resnet_exp import speed
from resnet_exp.bench.table import BENCH_JSON, sweep_rows
from resnet_exp.config import CONF_DIR, register_schemas, validate
from resnet_exp.module import split_weight_decay
from resnet_exp.pipeline import Parts, build_parts

REPO_ROOT = CONF_DIR.parent
Stamps = list[list[float]]  # per epoch: perf_counter at its start and after each training batch


class EpochClock(Callback):
    """The clock stamps of every training epoch; with `output_file`, each epoch end also writes
    {"loop_s": wall seconds of the training epochs so far} there."""

    def __init__(self, output_file: str | None = None) -> None:
        self.epochs: Stamps = []
        self.output_file = output_file

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        speed.synchronize(pl_module.device)
        self.epochs.append([time.perf_counter()])

    def on_train_batch_end(self, *args: Any) -> None:
        self.epochs[-1].append(time.perf_counter())

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        speed.synchronize(pl_module.device)
        self.epochs[-1][-1] = time.perf_counter()  # the last batch's device work included
        if self.output_file:
            write_loop_seconds(Path(self.output_file), self.epochs)


def write_loop_seconds(path: Path, epochs: Stamps) -> None:
    path.write_text(json.dumps({"loop_s": sum(stamps[-1] - stamps[0] for stamps in epochs)}))


def mean_step_ms(epochs: Stamps, skip: int = 1) -> float:
    """Wall ms per training batch over the epochs after the first `skip` (warm-up) ones."""
    kept = list(epochs[skip:]) or list(epochs)
    return sum(s[-1] - s[0] for s in kept) * 1e3 / sum(len(s) - 1 for s in kept)


def summarize(per_round: Mapping[str, Mapping[str, Sequence[float]]], baselines: Sequence[str]) -> dict[str, Any]:
    """Per program and clock, the `median` over rounds; and `over[baseline]`: the median and range over rounds
    of its difference from the baseline program *in the same round*, so that a round in which the whole machine
    was slow counts for nobody."""
    out: dict[str, Any] = {}
    for name, clocks in per_round.items():
        out[name] = {"median": {k: statistics.median(v) for k, v in clocks.items()}, "over": {}}
        for base in (b for b in baselines if b in per_round and b != name):
            diffs = {k: [a - b for a, b in zip(v, per_round[base][k])] for k, v in clocks.items()}
            out[name]["over"][base] = {"median": {k: statistics.median(d) for k, d in diffs.items()},
                                       "range": {k: [min(d), max(d)] for k, d in diffs.items()}}
    return out


def rotated(items: Sequence[Any], r: int) -> list[Any]:
    """Round `r`'s order: each program goes first in turn, so that slow spells hit all alike."""
    return [*items[r % len(items):], *items[:r % len(items)]]


def compose_run_config(overrides: Sequence[str], output_dir: Path) -> DictConfig:
    """The config `python -m resnet_exp.run <overrides>` would get, with `output_dir` as run folder."""
    register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="benchmarks"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    validate(cfg)
    return cfg


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Keep Lightning's banners, bars and info logs out of the benchmark's own output."""
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)


def framework_fit(cfg: DictConfig, before_fit: Callable[[Parts], None] | None = None) -> Parts:
    """Build every part as `resnet_exp.run` does and fit."""
    with quiet():
        parts = build_parts(cfg)
        if before_fit is not None:
            before_fit(parts)
        parts.trainer.fit(parts.module, datamodule=parts.datamodule)
    return parts


def callback(parts: Parts, name: str) -> Any:
    """The trainer's callback of class `name`."""
    return next(cb for cb in parts.trainer.callbacks if type(cb).__name__ == name)


def run_model(cfg: DictConfig, datamodule: Any) -> nn.Module:
    """A fresh copy of the run's model (same seed, same arch)."""
    pl.seed_everything(cfg.seed, workers=True)
    return instantiate(cfg.arch, num_classes=datamodule.num_classes, in_channels=datamodule.in_channels,
                       input_size=datamodule.image_size)


def make_optimizer(cfg: DictConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The run's optimizer with the run's parameter groups (no weight decay on BN and biases)."""
    return instantiate(cfg.optimizer)(params=split_weight_decay(model, bool(cfg.module.decay_norm_and_bias)))


def plain_loop(model: nn.Module, optimizer: torch.optim.Optimizer, loader_fn: Callable[[], Iterable],
               epochs: int, device: torch.device, autocast_dtype: torch.dtype | None = None,
               channels_last: bool = False) -> Stamps:
    """The textbook training loop, clocked as `EpochClock` clocks a fit."""
    model.train()
    criterion = nn.CrossEntropyLoss()
    out = []
    for _ in range(epochs):
        speed.synchronize(device)
        out.append([time.perf_counter()])
        for images, labels in loader_fn():
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            if channels_last:
                images = speed.channels_last_batch(images)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
                loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
            out[-1].append(time.perf_counter())
        speed.synchronize(device)
        out[-1][-1] = time.perf_counter()
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


def bare_fit(model: nn.Module, cfg: DictConfig, datamodule: Any, out: Path) -> Stamps:
    """One epoch of `BareClassifier` in a CPU Trainer with logger, checkpoints, progress bar, model summary and
    validation off."""
    clock = EpochClock()
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         num_sanity_val_steps=0, default_root_dir=str(out), callbacks=[clock])
    with quiet():
        trainer.fit(BareClassifier(model, cfg), datamodule=datamodule)
    return clock.epochs


def run_checked(cmd: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> None:
    """Run `cmd` to its end; a failure raises with the end of its stderr."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def bench_runs(runs: Sequence[tuple[str, Sequence[str]]], threads: int | None = None,
               log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Each (label, arguments) as `python -m resnet_exp.bench <arguments>` in a fresh process: its command and
    rows (with `-m`, every job's rows in job order)."""
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    out = []
    with tempfile.TemporaryDirectory(prefix="resnet_exp_bench_") as work:
        for i, (label, args) in enumerate(runs):
            folder, multirun = Path(work) / str(i), "-m" in args
            where = f"hydra.{'sweep' if multirun else 'run'}.dir={folder}"
            run_checked([sys.executable, "-m", "resnet_exp.bench", *args, where], env, cwd=REPO_ROOT)
            rows = sweep_rows(folder) if multirun else json.loads((folder / BENCH_JSON).read_text())["rows"]
            out.append({"label": label, "rows": rows,
                        "command": shlex.join(["python", "-m", "resnet_exp.bench", *args])})
            log(f"  {label}: " + ", ".join(f"{r['arch']} {r['mode']} {r['mean_ms']:.2f} ms" for r in rows))
    return out
