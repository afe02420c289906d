"""StepTimer: per-batch training step times you can trust, without slowing the run down.

For every training batch: device time, host time, data wait (the loader's FetchClock) and the
host gap between batches (what each means: `step_stats`). Device time comes from CUDA events
recorded at batch start and end, read lazily (`Event.query()` every `resolve_every_n_steps`
batches, one wait at epoch end): no sync per step. Without CUDA, device time is host time.

Warm-up batches (the first `warmup_steps` of a fit, any batch whose input shape was not seen
before, any batch during which torch.compile compiled) are kept in the CSV with `warmup=1` but
left out of every statistic.

Outputs: `step_times.csv` in `output_dir` (one row per batch, see `step_stats.CSV_COLUMNS`);
per-epoch statistics logged to every logger under `step_time/` (wandb also gets the step series,
one point per `resolve_every_n_steps` batches: their mean, and a histogram per epoch); and
`summary()`, the `step_time` block of results.json, with peak memory (CUDA max allocated per
epoch; on CPU the process's peak RSS).
"""

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

from resnet_exp.callbacks.probes import compile_count, fetch_clock, finite_mean, first_tensor, wandb_loggers
from resnet_exp.callbacks.step_stats import StepRow, append_csv, continue_csv, per_epoch_stats, read_csv, step_stats
from resnet_exp.callbacks.time_to_accuracy import TTA_FILE, TrainClock
from resnet_exp.io import rounded
from resnet_exp.speed import peak_memory_mb

log = logging.getLogger(__name__)


CSV_FILE = "step_times.csv"
PREFIX = "step_time/"


class StepTimer(Callback):
    """Times every training batch; see the module docstring for what each number means.

    Args:
        output_dir: where `step_times.csv` goes (default: the trainer's `default_root_dir`).
        warmup_steps: batches at the start of a fit left out of the statistics.
        warmup_on_new_shape: also leave out a batch whose input shape was not seen before
            (cuDNN autotuning, torch.compile recompiles, allocator growth happen there).
        warmup_on_compile: also leave out a batch during which torch.compile compiled a graph.
        resolve_every_n_steps: read finished CUDA events (and flush the per-step wandb series)
            every this many batches; nothing ever blocks before the epoch ends.
        csv_file: file name of the per-batch table (null: no file).
        log_steps: send the step series to wandb (means over resolve_every_n_steps batches).
        log_histogram: send a histogram of the epoch's step times to wandb.
        time_to_accuracy_file: file name of the accuracy-vs-training-time points, one per
            validation (null: no file; see `time_to_accuracy`).
    """

    def __init__(
        self,
        output_dir: str | None = None,
        warmup_steps: int = 3,
        warmup_on_new_shape: bool = True,
        warmup_on_compile: bool = True,
        resolve_every_n_steps: int = 50,
        csv_file: str | None = CSV_FILE,
        log_steps: bool = True,
        log_histogram: bool = True,
        time_to_accuracy_file: str | None = TTA_FILE,
    ) -> None:
        super().__init__()
        if warmup_steps < 0:
            raise ValueError(f"callbacks.step_timer.warmup_steps={warmup_steps}: must be >= 0")
        if resolve_every_n_steps < 1:
            raise ValueError(f"callbacks.step_timer.resolve_every_n_steps={resolve_every_n_steps}: "
                             "must be >= 1")
        self.output_dir = output_dir
        self.warmup_steps = warmup_steps
        self.warmup_on_new_shape = warmup_on_new_shape
        self.warmup_on_compile = warmup_on_compile
        self.resolve_every_n_steps = resolve_every_n_steps
        self.csv_file = csv_file
        self.log_steps = log_steps
        self.log_histogram = log_histogram
        self.time_to_accuracy_file = time_to_accuracy_file
        self._resumed_at_step = 0  # from a checkpoint: the fit continues step_times.csv
        self._reset()

    # ------------------------------------------------------------------ state
    def _reset(self) -> None:
        self.rows: list[StepRow] = []
        self.epochs: list[dict[str, Any]] = []
        self._cuda = False
        self._device: torch.device | None = None
        self._device_name = "cpu"
        self._pending: deque[tuple[StepRow, Any, Any]] = deque()
        self._events: list[Any] = []  # free CUDA events, reused
        self._seen_shapes: set = set()
        self._batches_in_fit = 0
        self._last_end: float | None = None
        self._fetched_s: float | None = None  # the loader's FetchClock at the last batch end
        self._open: tuple[Any, ...] | None = None  # the batch between its start and end hooks
        self._epoch_first_row = 0
        self._logged_rows = 0  # rows already sent as the per-step series
        self._written_rows = 0  # rows already in the CSV
        self._csv_path: Path | None = None
        self._steps_done = 0
        self._is_writer = True
        self.clock = TrainClock()  # training wall time, for accuracy vs time

    def _event(self) -> Any:
        return self._events.pop() if self._events else self._new_event()

    def _new_event(self) -> Any:
        return torch.cuda.Event(enable_timing=True)

    def _reset_peak_mem(self) -> None:
        if self._cuda:
            torch.cuda.reset_peak_memory_stats(self._device)

    def state_dict(self) -> dict[str, Any]:
        return {"steps_done": self._steps_done}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resumed_at_step = int(state_dict.get("steps_done", 0))

    # ------------------------------------------------------------------ hooks
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._reset()
        self._device = pl_module.device
        self._cuda = self._device.type == "cuda" and torch.cuda.is_available()
        if self._cuda:
            self._device_name = f"{self._device} ({torch.cuda.get_device_name(self._device)})"
        else:
            self._device_name = str(self._device)
        self._is_writer = trainer.is_global_zero
        if self.csv_file and self._is_writer:
            folder = Path(self.output_dir or trainer.default_root_dir)
            folder.mkdir(parents=True, exist_ok=True)
            self._csv_path = folder / self.csv_file
            self.rows = continue_csv(self._csv_path, self._resumed_at_step)
            self.epochs = per_epoch_stats(self.rows)
            self._written_rows = self._logged_rows = len(self.rows)
        tta = self.tta_path(trainer) if self._is_writer else None
        self.clock.start_fit(tta, self._resumed_at_step)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_first_row = len(self.rows)
        self._reset_peak_mem()
        self.clock.run()
        self._mark_batch_end(trainer)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        now = time.perf_counter()
        between_ms = (now - self._last_end) * 1e3 if self._last_end is not None else math.nan
        clock = fetch_clock(trainer)
        wait_ms = math.nan
        if clock is not None:
            wait_ms = (clock.total_s - self._fetched_s) * 1e3 if self._fetched_s is not None else math.nan
            self._fetched_s = clock.total_s
        if self._open is not None and self._open[1] is not None:
            self._events.append(self._open[1])  # a batch that never ended (skipped by a hook)
        first = first_tensor(batch)
        batch_size = int(first.shape[0]) if first is not None and first.ndim else 0
        warm = self._batches_in_fit < self.warmup_steps
        if first is not None:
            shape = (tuple(first.shape), first.dtype)
            if shape not in self._seen_shapes:
                self._seen_shapes.add(shape)
                warm = warm or self.warmup_on_new_shape
        start_event = None
        if self._cuda:
            start_event = self._event()
            start_event.record()
        self._open = (wait_ms, between_ms, start_event, batch_size, compile_count(), warm,
                      trainer.global_step, time.perf_counter())

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        if self._open is None:
            return
        end_event = None
        if self._cuda:
            end_event = self._event()
            end_event.record()
        t_end = time.perf_counter()
        wait_ms, between_ms, start_event, batch_size, compiles, warm, step, t_start = self._open
        self._open = None
        self._steps_done = trainer.global_step
        if self.warmup_on_compile and compile_count() != compiles:
            warm = True
        host_ms = (t_end - t_start) * 1e3
        row = StepRow(trainer.current_epoch, step, batch_size, host_ms, wait_ms, warm,
                      device_ms=math.nan if self._cuda else host_ms, between_ms=between_ms)
        self.rows.append(row)
        self._batches_in_fit += 1
        if self._cuda:
            self._pending.append((row, start_event, end_event))
        if self._batches_in_fit % self.resolve_every_n_steps == 0:
            self._resolve(block=False)
            self._flush_step_series(trainer)
        self._mark_batch_end(trainer)

    def _mark_batch_end(self, trainer: pl.Trainer) -> None:
        self._last_end = time.perf_counter()
        clock = fetch_clock(trainer)
        self._fetched_s = clock.total_s if clock is not None else None

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.clock.pause(pl_module.device)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self.clock.record(trainer.current_epoch, trainer.global_step, trainer.callback_metrics)
        self.clock.run()
        # Validation inside a training epoch is not data wait of the next training batch.
        if self._last_end is not None:
            self._mark_batch_end(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close_epoch(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close_epoch(trainer)  # an epoch cut short by max_steps / early stopping
        self.clock.pause(pl_module.device)
        self._write_wandb_summary(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        try:
            self._resolve(block=True)
            self._write_csv()
        except Exception:  # a failed CUDA context cannot be read any more
            log.debug("step timer: could not save the step times after a failure", exc_info=True)

    # ------------------------------------------------------------------ internals
    def _resolve(self, block: bool) -> None:
        """Read the CUDA events of finished batches, oldest first (the stream runs in order).
        `block`: wait once for the newest batch, so that every pending one is finished."""
        if block and self._pending:
            self._pending[-1][2].synchronize()
        while self._pending:
            row, start, end = self._pending[0]
            if not (block or end.query()):
                break
            row.device_ms = start.elapsed_time(end)
            self._events.extend((start, end))
            self._pending.popleft()

    def _resolved_upto(self) -> int:
        return len(self.rows) - len(self._pending)

    def _flush_step_series(self, trainer: pl.Trainer) -> None:
        """Send the rows resolved since the last flush to wandb as one point (their mean, at the
        last one's step): a wandb call costs ~1 ms of host time, too much for every batch."""
        upto = self._resolved_upto()
        window = self.rows[self._logged_rows:upto]
        self._logged_rows = upto
        if not (window and self.log_steps and self._is_writer):
            return
        metrics = {f"{PREFIX}{key}": finite_mean([getattr(r, key) for r in window])
                   for key in ("device_ms", "host_ms", "data_wait_ms", "between_ms")}
        for logger in wandb_loggers(trainer):
            logger.log_metrics(metrics, step=window[-1].step)

    def _write_csv(self) -> None:
        if self._csv_path is None:
            return
        upto = self._resolved_upto()
        append_csv(self._csv_path, self.rows[self._written_rows:upto])
        self._written_rows = upto

    def _close_epoch(self, trainer: pl.Trainer) -> None:
        if self._epoch_first_row >= len(self.rows):
            return
        self._resolve(block=True)
        self._flush_step_series(trainer)
        self._write_csv()
        rows = self.rows[self._epoch_first_row:]
        self._epoch_first_row = len(self.rows)
        stats = {"epoch": rows[0].epoch, **step_stats(rows, rounded(self._peak_mem_mb(), 1))}
        self.epochs.append(stats)
        if self._is_writer:
            self._log_epoch(trainer, stats, [r.device_ms for r in rows if not r.warmup])

    def tta_path(self, trainer: pl.Trainer) -> Path | None:
        if not self.time_to_accuracy_file:
            return None
        folder = Path(self.output_dir or trainer.default_root_dir)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / self.time_to_accuracy_file

    def _peak_mem_mb(self) -> float:
        return peak_memory_mb(self._device if self._cuda else torch.device("cpu"))

    def _log_epoch(self, trainer: pl.Trainer, stats: dict[str, Any], device_ms: list[float]) -> None:
        metrics = {f"{PREFIX}{k}": float(v) for k, v in stats.items()
                   if k not in ("epoch", "steps") and v is not None}
        metrics["epoch"] = float(stats["epoch"])
        step = max(trainer.global_step - 1, 0)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        if self.log_histogram and device_ms:
            for logger in wandb_loggers(trainer):
                import wandb

                logger.experiment.log({f"{PREFIX}hist_ms": wandb.Histogram(device_ms),
                                       "trainer/global_step": step})

    def _write_wandb_summary(self, trainer: pl.Trainer) -> None:
        if not self._is_writer:
            return
        flat = {f"{PREFIX}{k}": v for k, v in self.summary().items()
                if isinstance(v, (int, float, str)) and v is not None}
        for logger in wandb_loggers(trainer):
            logger.experiment.summary.update(flat)

    # ------------------------------------------------------------------ results
    def load_csv(self, path: Path) -> None:
        """Take the rows (and per-epoch statistics) from a step_times.csv this callback wrote."""
        self.rows = read_csv(path)
        self._cuda = any(abs(r.device_ms - r.host_ms) > 1e-6 for r in self.rows)
        self._device_name = f"{'cuda' if self._cuda else 'cpu'} (read back from {Path(path).name})"
        self._csv_path = Path(path)
        self.epochs = per_epoch_stats(self.rows)

    def summary(self) -> dict[str, Any]:
        """The `step_time` block of results.json: statistics over all timed batches of the fit."""
        return {
            "timer": "cuda_events" if self._cuda else "host",
            "device": self._device_name,
            **step_stats(self.rows, max((e["peak_mem_mb"] for e in self.epochs
                                         if e["peak_mem_mb"] is not None), default=None)),
            "peak_mem": "cuda_max_allocated" if self._cuda else "host_max_rss",
            "warmup": {"steps": self.warmup_steps, "new_shape": self.warmup_on_new_shape,
                       "compile": self.warmup_on_compile},
            "csv": self.csv_file if self._csv_path is not None else None,
            "per_epoch": list(self.epochs),
        }
