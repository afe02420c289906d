"""What the step timer sends to the loggers: the step series (to wandb, one point per `resolve_every_n_steps`
batches: a logger call costs ~1 ms), the statistics of each epoch, and the summary of the fit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pytorch_lightning as pl

from resnet_exp.callbacks.step_stats import StepRow, step_stats

PREFIX = "step_time/"
SERIES_KEYS = ("device_ms", "host_ms", "data_wait_ms", "between_ms")


def wandb_loggers(trainer: pl.Trainer) -> list[Any]:
    """The trainer's wandb loggers."""
    from pytorch_lightning.loggers import WandbLogger

    return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]


def finite_mean(values: Sequence[float]) -> float:
    """The mean of the values that are not NaN (NaN if none)."""
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def log_step_series(trainer: pl.Trainer, window: Sequence[StepRow]) -> None:
    """One point of the wandb step series: the means over `window`, at its last step."""
    if not window:
        return
    metrics = {f"{PREFIX}{key}": finite_mean([getattr(r, key) for r in window]) for key in SERIES_KEYS}
    for logger in wandb_loggers(trainer):
        logger.log_metrics(metrics, step=window[-1].step)


def log_epoch(trainer: pl.Trainer, rows: Sequence[StepRow], histogram: bool) -> None:
    """The statistics of one epoch's `rows` to every logger (and, with `histogram`, its step times to wandb)."""
    metrics = {f"{PREFIX}{k}": float(v) for k, v in step_stats(rows).items() if k != "steps" and v is not None}
    metrics["epoch"] = int(rows[0].epoch)  # counted from 0 in metrics.csv, as Lightning writes it
    step = max(trainer.global_step - 1, 0)
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=step)
    device_ms = [r.device_ms for r in rows if not r.warmup]
    if histogram and device_ms:
        for logger in wandb_loggers(trainer):
            import wandb

            logger.experiment.log({f"{PREFIX}hist_ms": wandb.Histogram(device_ms), "trainer/global_step": step})


def log_summary(trainer: pl.Trainer, summary: Mapping[str, Any]) -> None:
    """The fit's statistics (its plain values) into the wandb run summary."""
    flat = {f"{PREFIX}{k}": v for k, v in summary.items() if isinstance(v, (int, float, str)) and v is not None}
    for logger in wandb_loggers(trainer):
        logger.experiment.summary.update(flat)
