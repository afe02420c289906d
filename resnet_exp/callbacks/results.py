"""What the callbacks add to results.json, read back from their records in the run folder (also under ddp_spawn)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks.early_stopping import EarlyStoppingReason

from resnet_exp.callbacks.step_stats import read_csv, step_time_block
from resnet_exp.callbacks.step_timer import StepTimer, device_label
from resnet_exp.callbacks.train_clock import TimeToAccuracy, read_points
from resnet_exp.data import ImageDataModule
from resnet_exp.io import LAST_CHECKPOINT, load_header
from resnet_exp.speed import SpeedPlan, peak_tflops


def _callback(trainer: pl.Trainer, kind: type[pl.Callback]) -> Any:
    return next((cb for cb in trainer.callbacks if isinstance(cb, kind)), None)


def step_time_summary(trainer: pl.Trainer) -> dict[str, Any] | None:
    """The `step_time` block over the rows of the StepTimer's step_times.csv; None without them."""
    timer = _callback(trainer, StepTimer)
    path = timer.csv_path(trainer) if timer is not None else None
    rows = read_csv(path) if path is not None and path.is_file() else []
    if not rows:
        return None
    device = trainer.strategy.root_device
    return step_time_block(rows, device=device_label(device), cuda=device.type == "cuda",
                           warmup=timer.warmup_settings(), csv_file=timer.csv_file)


def time_to_accuracy_points(trainer: pl.Trainer) -> list[dict[str, Any]] | None:
    """The `time_to_accuracy` points of the trainer's TimeToAccuracy record; None without that callback."""
    clock = _callback(trainer, TimeToAccuracy)
    return None if clock is None else read_points(clock.path(trainer))


def stopped_early(trainer: pl.Trainer) -> dict[str, Any] | None:
    """The epoch (0-based), reason and message of an EarlyStopping callback that ended the fit, else None."""
    for callback in trainer.early_stopping_callbacks:
        if callback.stopping_reason != EarlyStoppingReason.NOT_STOPPED:
            return {"epoch": callback.stopped_epoch, "reason": callback.stopping_reason.name.lower(),
                    "message": callback.stopping_reason_message}
    return None


def _significant(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else float(f"{value:.{digits}g}")


def throughput(step_time: dict[str, Any] | None, train_flops: int | None, plan: SpeedPlan,
               device: torch.device) -> dict[str, Any]:
    """The step timer's images/s, achieved TFLOP/s (images/s x training FLOPs per image) and MFU (known peaks)."""
    images_per_s = (step_time or {}).get("images_per_s")
    tflops = images_per_s * train_flops / 1e12 if images_per_s and train_flops else None
    peak = peak_tflops(device, plan.precision, plan.tf32)
    return {"images_per_s": images_per_s, "train_flops_per_image": train_flops, "tflop_per_s": _significant(tflops),
            "peak_tflops": peak, "mfu": _significant(tflops / peak) if tflops and peak else None}


def selected_checkpoint(trainer: pl.Trainer) -> str | None:
    """The best checkpoint of the first checkpoint callback with a `monitor`; None: the last weights are tested."""
    return next((cb.best_model_path for cb in trainer.checkpoint_callbacks
                 if getattr(cb, "monitor", None) and getattr(cb, "best_model_path", "")), None)


def selected_on(datamodule: ImageDataModule, best: str | None) -> str | None:
    """Which split picked the checkpoint that was tested: val, test, or None (the last weights)."""
    return ("test" if datamodule.val_size == 0 and datamodule.val_on_test else "val") if best else None


def fit_records(trainer: pl.Trainer, run_dir: Path, plan: SpeedPlan, train_flops: int | None) -> dict[str, Any]:
    """results.json's `epochs`, `steps`, `step_time`, `throughput` and `time_to_accuracy` of a finished fit (under
    ddp_spawn this trainer never advanced: the last checkpoint knows the epochs and steps)."""
    progress = {"epochs": trainer.current_epoch, "steps": trainer.global_step}
    if trainer.global_step == 0 and (run_dir / LAST_CHECKPOINT).is_file():
        saved = load_header(run_dir / LAST_CHECKPOINT)
        progress = {"epochs": saved["epoch"] + 1, "steps": saved["global_step"]}
    step_time = step_time_summary(trainer)
    return {**progress, "step_time": step_time,
            "throughput": throughput(step_time, train_flops, plan, trainer.strategy.root_device),
            "time_to_accuracy": time_to_accuracy_points(trainer)}
