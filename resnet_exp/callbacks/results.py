"""What the callbacks contribute to results.json, each read back from its record in the run folder:
the same in-process and when the fit ran in other processes (ddp_spawn)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks.early_stopping import EarlyStoppingReason

from resnet_exp.callbacks.step_stats import read_csv, step_time_block
from resnet_exp.callbacks.step_timer import StepTimer, device_label, uses_cuda
from resnet_exp.callbacks.train_clock import TimeToAccuracy, read_points


def step_time_summary(trainer: pl.Trainer) -> dict[str, Any] | None:
    """The `step_time` block: `step_time_block` over the rows of the trainer's StepTimer record
    (step_times.csv). None without a timer, a file, or a timed batch."""
    timer = next((cb for cb in trainer.callbacks if isinstance(cb, StepTimer)), None)
    path = timer.csv_path(trainer) if timer is not None else None
    rows = read_csv(path) if path is not None and path.is_file() else []
    if timer is None or not rows:
        return None
    device = trainer.strategy.root_device
    return step_time_block(rows, device=device_label(device), cuda=uses_cuda(device), warmup=timer.warmup_settings(),
                           csv_file=timer.csv_file)


def time_to_accuracy_points(trainer: pl.Trainer) -> list[dict[str, Any]] | None:
    """The `time_to_accuracy` points: the trainer's TimeToAccuracy record (time_to_accuracy.csv),
    None without that callback."""
    clock = next((cb for cb in trainer.callbacks if isinstance(cb, TimeToAccuracy)), None)
    return None if clock is None else read_points(clock.path(trainer))


def stopped_early(trainer: pl.Trainer) -> dict[str, Any] | None:
    """The `stopped_early` block: the epoch (0-based) in which an EarlyStopping callback ended the
    fit, its reason and message; None when none did (or none was on)."""
    for callback in trainer.early_stopping_callbacks:
        if callback.stopping_reason != EarlyStoppingReason.NOT_STOPPED:
            return {"epoch": callback.stopped_epoch, "reason": callback.stopping_reason.name.lower(),
                    "message": callback.stopping_reason_message}
    return None
