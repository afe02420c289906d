"""Progress displays that read logged values on logging steps only: a rich bar in a terminal, else log lines."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ProgressBar, RichProgressBar

from resnet_exp.callbacks.probes import logging_due
from resnet_exp.report.summary import format_duration, log_to_files

log = logging.getLogger("resnet_exp.progress")

STEP_LOSS = "train/loss_step"  # logged without prog_bar: the bar adds it
VALIDATION_KEYS = ("val/loss", "val/acc", "val/acc_best")
STYLES = ("auto", "rich", "plain")


def epoch_label(trainer: pl.Trainer) -> str:
    """The running epoch counted from 1, out of the run's epochs when it has a limit: `epoch 3/8`."""
    limited = trainer.max_epochs not in (None, -1)
    return f"epoch {trainer.current_epoch + 1}" + (f"/{trainer.max_epochs}" if limited else "")


def validation_line(trainer: pl.Trainer, since: float) -> str:
    """`epoch 3 validated: val/loss ...  (1m02s elapsed)`: read once per validation, so no step pays."""
    metrics = trainer.callback_metrics
    shown = [f"{key} {float(metrics[key]):.4f}" for key in VALIDATION_KEYS if key in metrics]
    return (f"epoch {trainer.current_epoch + 1} validated: {'  '.join(shown)}  "
            f"({format_duration(time.perf_counter() - since)} elapsed)")


class SyncFreeRichProgressBar(RichProgressBar):
    """Lightning's rich bar, drawn at most `refresh_rate` times a second, reading metrics on logging steps only (or
    every `metrics_every_n_steps`), with the step loss, epochs from 1, no `v_num`, validations in run.log."""

    def __init__(self, metrics_every_n_steps: int | None = None, refresh_rate: int = 4, **kwargs: Any) -> None:
        if metrics_every_n_steps is not None and metrics_every_n_steps < 1:
            raise ValueError(f"metrics_every_n_steps={metrics_every_n_steps}: must be >= 1 (or null)")
        if refresh_rate < 0:
            raise ValueError(f"refresh_rate={refresh_rate}: must be >= 0 (draws per second; 0 turns the bar off)")
        super().__init__(refresh_rate=refresh_rate, **kwargs)
        self.metrics_every_n_steps = metrics_every_n_steps
        self._interval = 1.0 / refresh_rate if refresh_rate else float("inf")
        self._shown: dict[str, Any] = {}
        self._drawn_at = self._read_at = -float("inf")
        self._keep_shown = False  # in a batch whose metrics are not read: get_metrics returns the last ones
        self._fit_start = time.perf_counter()

    def _describe_epoch(self, trainer: pl.Trainer) -> None:
        if self.progress is not None and self.train_progress_bar_id is not None:
            self.progress.update(self.train_progress_bar_id, description=epoch_label(trainer).capitalize())

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._fit_start = time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self._describe_epoch(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not trainer.sanity_checking and trainer.is_global_zero:
            log_to_files(validation_line(trainer, self._fit_start), log.name)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        if self.is_disabled:
            return
        now = time.perf_counter()
        every = self.metrics_every_n_steps
        due = trainer.global_step % every == 0 if every else logging_due(trainer, trainer.global_step - 1)
        read = due and now - self._read_at >= self._interval
        last = batch_idx + 1 >= self.total_train_batches
        if not (read or last or now - self._drawn_at >= self._interval):
            return
        self._drawn_at = now
        if read:
            self._read_at = now
        self._keep_shown = not read
        new_bar = self.train_progress_bar_id is None  # Lightning adds one when resuming mid-epoch
        try:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        finally:
            self._keep_shown = False
        if new_bar:
            self._describe_epoch(trainer)

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        if self._keep_shown:
            return self._shown
        shown = super().get_metrics(trainer, pl_module)
        shown.pop("v_num", None)
        value = trainer.callback_metrics.get(STEP_LOSS)
        if value is not None and trainer.training:
            shown[STEP_LOSS] = float(value)
        self._shown = shown
        return shown


class LogProgress(ProgressBar):
    """A log line every `every_n_steps` steps or `every_n_seconds` seconds (None: not by that), `epoch 2/8  step
    430/1712  loss 0.4213  318 img/s  ETA 6m41s` (the last loss logged), and one per validation."""

    def __init__(self, every_n_steps: int | None = 50, every_n_seconds: float | None = 30.0) -> None:
        super().__init__()
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"every_n_steps={every_n_steps}: must be >= 1 (or null)")
        if every_n_seconds is not None and every_n_seconds <= 0:
            raise ValueError(f"every_n_seconds={every_n_seconds}: must be > 0 (or null)")
        self.every_n_steps, self.every_n_seconds = every_n_steps, every_n_seconds
        self._enabled = True
        self._loss: float | None = None
        self._fit_start = self._last_time = 0.0
        self._fit_start_step = self._last_step = 0
        self._images = 0  # since the last line

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_start = self._last_time = time.perf_counter()
        self._fit_start_step = self._last_step = trainer.global_step
        self._images = 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        images = batch[0] if isinstance(batch, (list, tuple)) else batch
        self._images += int(images.shape[0])  # a shape: known on the host, no sync
        if logging_due(trainer, trainer.global_step - 1):  # the module logged its step loss: read it now
            value = trainer.callback_metrics.get(STEP_LOSS)
            if value is not None:
                self._loss = float(value)
        now = time.perf_counter()
        step = trainer.global_step
        if not ((self.every_n_steps is not None and step - self._last_step >= self.every_n_steps)
                or (self.every_n_seconds is not None and now - self._last_time >= self.every_n_seconds)):
            return
        if self._enabled and trainer.is_global_zero:
            total = trainer.estimated_stepping_batches
            done = step - self._fit_start_step
            parts = [epoch_label(trainer), f"step {step}/{total if math.isfinite(total) else '?'}",
                     f"loss {self._loss:.4f}" if self._loss is not None else "loss -",
                     f"{self._images / max(now - self._last_time, 1e-9):.0f} img/s"]
            if done > 0 and math.isfinite(total):
                parts.append(f"ETA {format_duration((now - self._fit_start) / done * (total - step))}")
            log.info("  ".join(parts))
        self._last_time, self._last_step, self._images = now, step, 0

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and self._enabled and trainer.is_global_zero:
            log.info(validation_line(trainer, self._fit_start))


def progress_bar(rich: Callable[[], ProgressBar], plain: Callable[[], ProgressBar], style: str = "auto",
                 is_terminal: Callable[[], bool] = lambda: sys.stdout.isatty()) -> ProgressBar:
    """`rich()` in a terminal, else `plain()` (style=auto), or the one named (factories: Hydra partials)."""
    if style not in STYLES:
        raise ValueError(f"style={style}: must be one of {', '.join(STYLES)}")
    chosen = style if style != "auto" else ("rich" if is_terminal() else "plain")
    return rich() if chosen == "rich" else plain()
