"""The sync guard: a tiny fit with the default callbacks and loggers (wandb offline) reads no
device value on the host in its training steps, except on logging steps; a module that does fails."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import open_dict
from torchmetrics import MeanMetric

from benchmarks.harness import compose_run_config
from resnet_exp.callbacks.sync_guard import HostSyncError, SyncGuard
from resnet_exp.module import ImageClassifier
from resnet_exp.pipeline import build_parts, fit_and_test

GUARD = "+callbacks.sync_guard._target_=resnet_exp.callbacks.sync_guard.SyncGuard"


def tiny(tmp_path: Path, *extra: str):
    """10 training batches an epoch, loggers writing every 5 steps (steps 4 and 9 are logging steps)."""
    cfg = compose_run_config([
        "data=synthetic", "data.image_size=8", "data.train_size=48", "data.val_size=8", "data.test_size=8",
        "data.batch_size=4", "data.num_workers=0", "arch=resnet20", "arch.width=0.125",
        "trainer.accelerator=cpu", "trainer.devices=1", "trainer.max_epochs=2", "trainer.log_every_n_steps=5",
        "logger.wandb.mode=offline", GUARD, *extra], tmp_path)
    with open_dict(cfg):
        del cfg["hydra"]  # a job's config has none (HydraConfig holds it)
    return cfg, build_parts(cfg)


def guard_of(parts) -> SyncGuard:
    return next(cb for cb in parts.trainer.callbacks if isinstance(cb, SyncGuard))


def test_default_fit_has_no_host_sync_in_training_steps(tmp_path: Path) -> None:
    cfg, parts = tiny(tmp_path)
    results = fit_and_test(cfg, parts, tmp_path)
    guard = guard_of(parts)
    steps = results["steps"]
    assert results["status"] == "completed" and steps == 20  # 2 epochs x 10 batches
    assert guard.violations == []
    assert guard.guarded_steps == steps - 4  # every step but the logging ones (4, 9, 14, 19)
    assert torch.Tensor.item.__qualname__ != "SyncGuard._guarded.<locals>.guarded"  # patches removed


class ItemModule(ImageClassifier):
    """Reads the loss on the host every step (what the guard must catch)."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.last_loss = loss.item()
        return loss


class WeightedMeanModule(ImageClassifier):
    """The known offender: MeanMetric.update(weight=<int>) copies the int to the device."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mean = MeanMetric()

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.mean.update(loss.detach(), weight=batch[1].shape[0])
        return loss


@pytest.mark.parametrize("module", [ItemModule, WeightedMeanModule])
def test_a_syncing_module_fails(tmp_path: Path, module: type) -> None:
    cfg, parts = tiny(tmp_path, "trainer.max_epochs=1", "logger.wandb.mode=disabled")
    m = parts.module
    bad = module(model=m.model, optimizer=m.optimizer_factory, num_classes=10)
    with pytest.raises(HostSyncError, match="during training step 0 "):
        parts.trainer.fit(bad, datamodule=parts.datamodule)
    assert guard_of(parts).violations
    assert torch.Tensor.item.__name__ == "item" and "guarded" not in repr(torch.Tensor.item)


def test_reads_on_logging_steps_are_allowed(tmp_path: Path) -> None:
    """Every step logs its loss: only the logging steps (log_every_n_steps=1) may, and all are."""
    cfg, parts = tiny(tmp_path, "trainer.max_epochs=1", "trainer.log_every_n_steps=1", "logger.wandb.mode=disabled")
    m = parts.module
    parts.trainer.fit(ItemModule(model=m.model, optimizer=m.optimizer_factory, num_classes=10),
                      datamodule=parts.datamodule)
    assert guard_of(parts).violations == [] and guard_of(parts).guarded_steps == 0
