"""A rich progress bar that costs nothing measurable per training step and never syncs the GPU.

Lightning's rich bar updates its task, reads `trainer.progress_bar_metrics` (turning every logged
tensor into a Python number: a host-device sync per step on a GPU) and asks its render thread for a
redraw after every batch; with small steps that is the largest per-step cost of a run. This bar:

- draws the training bar at most `refresh_rate` times a second (and at the epoch's last batch);
  between draws a batch costs one clock read;
- reads the logged metrics only on steps where the loggers write anyway (`trainer.log_every_n_steps`,
  or every `metrics_every_n_steps` steps), at most `refresh_rate` times a second, and shows the last
  values in between; outside training batches (epoch ends, validation) it reads as usual;
- shows the step loss (`STEP_KEYS`), which the module logs without `prog_bar` (Lightning would
  convert a progress-bar value to a number after every later batch), from the callback metrics.
"""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar

from resnet_exp.module import logging_due

STEP_KEYS = ("train/loss_step",)


class SyncFreeRichProgressBar(RichProgressBar):
    def __init__(self, metrics_every_n_steps: int | None = None, refresh_rate: int = 4,
                 **kwargs: Any) -> None:
        if metrics_every_n_steps is not None and metrics_every_n_steps < 1:
            raise ValueError(f"metrics_every_n_steps={metrics_every_n_steps}: must be >= 1 (or null)")
        if refresh_rate < 0:
            raise ValueError(f"refresh_rate={refresh_rate}: must be >= 0 (draws per second; 0 turns the bar off)")
        super().__init__(refresh_rate=refresh_rate, **kwargs)
        self.metrics_every_n_steps = metrics_every_n_steps
        self._interval = 1.0 / refresh_rate if refresh_rate else float("inf")
        self._shown: dict[str, Any] = {}
        self._drawn_at = self._read_at = -float("inf")
        self._in_train_batch = False
        self._read_now = False

    def metrics_due(self, trainer: pl.Trainer) -> bool:
        """True in `on_train_batch_end` of a batch whose metrics may be read (no sync added)."""
        step = trainer.global_step - 1  # the step the batch started at (it has stepped by now)
        if self.metrics_every_n_steps is not None:
            return (step + 1) % self.metrics_every_n_steps == 0
        return logging_due(trainer, step)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        if self.is_disabled:
            return
        now = time.perf_counter()
        read = self.metrics_due(trainer) and now - self._read_at >= self._interval
        last = batch_idx + 1 >= self.total_train_batches
        if not (read or last or now - self._drawn_at >= self._interval):
            return
        self._drawn_at = now
        if read:
            self._read_at = now
        self._in_train_batch, self._read_now = True, read
        try:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        finally:
            self._in_train_batch = self._read_now = False

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        if self._in_train_batch and not self._read_now:
            return self._shown
        shown = super().get_metrics(trainer, pl_module)
        for key in STEP_KEYS:
            value = trainer.callback_metrics.get(key)
            if value is not None and trainer.training:
                shown[key] = float(value)
        self._shown = shown
        return shown
