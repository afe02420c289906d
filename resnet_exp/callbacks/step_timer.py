"""StepTimer: per-batch training step times without a sync per step. Device time comes from two CUDA events
per batch, read lazily (`Event.query()` every `resolve_every_n_steps` batches, one wait at epoch end), else it
is host time; the record is `step_times.csv`, where warm-up batches are marked (`warmup=1`)."""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import WandbLogger

from resnet_exp.callbacks.lightning_shims import compile_count
from resnet_exp.callbacks.probes import first_found
from resnet_exp.callbacks.step_stats import StepRow, append_csv, continue_csv, finite_mean, step_stats, step_time_block
from resnet_exp.io import rounded
from resnet_exp.speed import peak_memory_mb

log = logging.getLogger(__name__)

CSV_FILE = "step_times.csv"
PREFIX = "step_time/"
SERIES_KEYS = ("device_ms", "host_ms", "data_wait_ms", "between_ms")


def device_label(device: torch.device) -> str:
    """The device as results.json names it, e.g. `cuda:0 (NVIDIA H100 80GB HBM3)` or `cpu`."""
    return f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)


def wandb_loggers(trainer: pl.Trainer) -> list[Any]:
    return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]


class StepTimer(Callback):
    """Times every training batch; the arguments are described in conf/callbacks/default.yaml (`step_timer`)."""

    def __init__(self, output_dir: str | None = None, warmup_steps: int = 3, warmup_on_new_shape: bool = True,
                 warmup_on_compile: bool = True, resolve_every_n_steps: int = 50,
                 csv_file: str | None = CSV_FILE, log_steps: bool = True, log_histogram: bool = True) -> None:
        super().__init__()
        if warmup_steps < 0:
            raise ValueError(f"callbacks.step_timer.warmup_steps={warmup_steps}: must be >= 0")
        if resolve_every_n_steps < 1:
            raise ValueError(f"callbacks.step_timer.resolve_every_n_steps={resolve_every_n_steps}: must be >= 1")
        self.output_dir = output_dir
        self.warmup_steps = warmup_steps
        self.warmup_on_new_shape = warmup_on_new_shape
        self.warmup_on_compile = warmup_on_compile
        self.resolve_every_n_steps = resolve_every_n_steps
        self.csv_file = csv_file
        self.log_steps = log_steps
        self.log_histogram = log_histogram
        self._resumed_at_step = 0  # the checkpoint's global step: the fit continues step_times.csv
        self._reset()

    def _reset(self) -> None:
        self.rows: list[StepRow] = []  # every batch of the fit (a resumed fit's earlier ones too)
        self._cuda = False
        self._device = torch.device("cpu")
        self._open: StepRow | None = None  # the batch between its start and end hooks
        self._started = 0.0  # its host clock at the start,
        self._compiles = 0  # the graphs torch.compile had compiled then,
        self._start_event: Any = None  # and its CUDA start event
        self._pending: deque[tuple[StepRow, Any, Any]] = deque()  # ended batches with unread CUDA events
        self._seen_shapes: set[tuple[Any, ...]] = set()
        self._batches_in_fit = 0
        self._last_end: float | None = None
        self._gap_held: list[str] = []  # what ran since the last batch ended: "val", "checkpoint"
        self._clock: Any = None  # the training loader's FetchClock, found at each epoch start
        self._fetched_s: float | None = None  # its total at the last batch end
        self._epoch_first_row = 0
        self._logged_rows = 0  # rows already sent as the per-step series
        self._written_rows = 0  # rows already in the CSV
        self._csv_path: Path | None = None

    # Device access, replaced in tests by a fake GPU.
    def _new_event(self) -> Any:
        return torch.cuda.Event(enable_timing=True)

    def _reset_peak_mem(self) -> None:
        if self._cuda:
            torch.cuda.reset_peak_memory_stats(self._device)

    def _peak_mem_mb(self) -> float:
        return peak_memory_mb(self._device if self._cuda else torch.device("cpu"))

    def warmup_settings(self) -> dict[str, Any]:
        return {"steps": self.warmup_steps, "new_shape": self.warmup_on_new_shape, "compile": self.warmup_on_compile}

    def csv_path(self, trainer: pl.Trainer) -> Path | None:
        """Where this timer's record goes for `trainer` (None without a file)."""
        return Path(self.output_dir or trainer.default_root_dir) / self.csv_file if self.csv_file else None

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        self._resumed_at_step = int(checkpoint.get("global_step", 0))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._reset()
        self._device = pl_module.device
        self._cuda = self._device.type == "cuda"  # batches are timed with CUDA events
        path = self.csv_path(trainer)
        if path is not None and trainer.is_global_zero:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._csv_path = path
            self.rows = continue_csv(path, self._resumed_at_step)
            self._written_rows = self._logged_rows = len(self.rows)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_first_row = len(self.rows)
        self._reset_peak_mem()
        # The loaders stay the same for the whole epoch.
        self._clock = first_found(trainer.train_dataloader, lambda loader: getattr(loader, "fetch_clock", None))
        self._mark_batch_end()

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        now = time.perf_counter()
        between_ms = (now - self._last_end) * 1e3 if self._last_end is not None else math.nan
        wait_ms = (self._clock.total_s - self._fetched_s) * 1e3 if self._fetched_s is not None else math.nan
        first = first_found(batch, lambda x: x if isinstance(x, torch.Tensor) else None)
        warm = self._batches_in_fit < self.warmup_steps
        if first is not None and (shape := (tuple(first.shape), first.dtype)) not in self._seen_shapes:
            self._seen_shapes.add(shape)
            warm = warm or self.warmup_on_new_shape
        batch_size = int(first.shape[0]) if first is not None and first.ndim else 0
        self._open = StepRow(trainer.current_epoch, trainer.global_step, batch_size, math.nan, wait_ms, warm,
                             between_ms=between_ms, gap_held="+".join(self._gap_held))
        self._start_event = self._new_event() if self._cuda else None
        if self._start_event is not None:
            self._start_event.record()
        self._started, self._compiles = time.perf_counter(), compile_count()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        row, self._open = self._open, None
        if row is None:
            return
        if self._cuda:
            end_event = self._new_event()
            end_event.record()
            self._pending.append((row, self._start_event, end_event))
        row.host_ms = (time.perf_counter() - self._started) * 1e3
        if self.warmup_on_compile and compile_count() != self._compiles:
            row.warmup = True
        if not self._cuda:
            row.device_ms = row.host_ms
        self.rows.append(row)
        self._batches_in_fit += 1
        if self._batches_in_fit % self.resolve_every_n_steps == 0:
            self._resolve(block=False)
            self._flush_step_series(trainer)
        self._mark_batch_end()

    def _mark_batch_end(self, *held: str) -> None:
        self._last_end = time.perf_counter()
        self._fetched_s = self._clock.total_s if self._clock is not None else None
        self._gap_held = list(held)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # A validation inside a training epoch is no data wait of the next batch; checkpoints are saved
        # after this hook (Lightning runs the checkpoint callbacks last), in the gap.
        if not trainer.sanity_checking and trainer.state.fn == "fit" and self._last_end is not None:
            self._mark_batch_end("val")

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if self._open is None and self._last_end is not None and "checkpoint" not in self._gap_held:
            self._gap_held.append("checkpoint")  # a save between two batches: label that gap

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Read the epoch's device times, append its rows to the CSV and log its statistics."""
        if self._epoch_first_row >= len(self.rows):
            return
        self._resolve(block=True)
        rows = self.rows[self._epoch_first_row:]
        self._epoch_first_row = len(self.rows)
        rows[-1].peak_mem_mb = rounded(self._peak_mem_mb(), 1)
        self._flush_step_series(trainer)
        self._write_csv()
        if not trainer.is_global_zero:
            return
        metrics = {f"{PREFIX}{k}": float(v) for k, v in step_stats(rows).items() if k != "steps" and v is not None}
        metrics["epoch"] = int(rows[0].epoch)  # counted from 0 in metrics.csv, as Lightning writes it
        step = max(trainer.global_step - 1, 0)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        device_ms = [r.device_ms for r in rows if not r.warmup]
        if self.log_histogram and device_ms:
            for logger in wandb_loggers(trainer):
                import wandb

                logger.experiment.log({f"{PREFIX}hist_ms": wandb.Histogram(device_ms), "trainer/global_step": step})

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.on_train_epoch_end(trainer, pl_module)  # an epoch cut short by max_steps / early stopping
        if trainer.is_global_zero:
            plain = {f"{PREFIX}{k}": v for k, v in self.summary().items() if isinstance(v, (int, float, str))}
            for logger in wandb_loggers(trainer):
                logger.experiment.summary.update(plain)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        try:
            self._resolve(block=True)
            self._write_csv()
        except Exception:  # a failed CUDA context cannot be read any more
            log.debug("step timer: could not save the step times after a failure", exc_info=True)

    def _resolve(self, block: bool) -> None:
        """Read the CUDA events of finished batches, oldest first; `block`: wait for the newest one first."""
        if block and self._pending:
            self._pending[-1][2].synchronize()
        while self._pending and (block or self._pending[0][2].query()):
            row, start_event, end_event = self._pending.popleft()
            row.device_ms = start_event.elapsed_time(end_event)

    def _flush_step_series(self, trainer: pl.Trainer) -> None:
        """The means of the rows resolved since the last flush, as one wandb point (a logger call costs ~1 ms)."""
        upto = len(self.rows) - len(self._pending)
        window = self.rows[self._logged_rows:upto]
        self._logged_rows = upto
        if self.log_steps and trainer.is_global_zero and window:
            metrics = {f"{PREFIX}{key}": finite_mean([getattr(r, key) for r in window]) for key in SERIES_KEYS}
            for logger in wandb_loggers(trainer):
                logger.log_metrics(metrics, step=window[-1].step)

    def _write_csv(self) -> None:
        upto = len(self.rows) - len(self._pending)
        if self._csv_path is not None:
            append_csv(self._csv_path, self.rows[self._written_rows:upto])
            self._written_rows = upto

    def summary(self) -> dict[str, Any]:
        """`step_time_block` over the rows this process timed (and those a resumed fit continued)."""
        return step_time_block(self.rows, device=device_label(self._device), cuda=self._cuda,
                               warmup=self.warmup_settings(), csv_file=self.csv_file if self._csv_path else None)
