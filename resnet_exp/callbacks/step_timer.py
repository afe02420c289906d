"""StepTimer: per-batch training step times you can trust, without slowing the run down.

For every training batch it records
- device time: CUDA events recorded on the stream at batch start and batch end (after the
  optimizer step), read lazily: every `resolve_every_n_steps` batches the callback reads the events
  that the GPU has already passed (`Event.query()`, never blocking) and at epoch end it waits once.
  No `torch.cuda.synchronize()` per step. Without CUDA, device time is the host time below.
- host time: wall time from `on_train_batch_start` to `on_train_batch_end` (on a GPU this is the
  time to launch the step, not to compute it, unless the host had to wait for the device),
- data wait: the host gap between the end of one batch and the start of the next (fetching the
  batch plus the loop's own work between steps; for the first batch of an epoch, from the epoch
  start, so it includes starting the loader).

Warm-up batches (the first `warmup_steps` of a fit, any batch whose input shape was not seen
before, any batch during which torch.compile compiled) are kept in the CSV with `warmup=1` but
left out of every statistic.

Outputs: `step_times.csv` in `output_dir` (one row per batch: epoch, step = `trainer.global_step`
when the batch started, batch_size, device_ms, host_ms, data_wait_ms, warmup 0/1); per-epoch
statistics logged to every logger under `step_time/` (wandb also gets the per-step series, flushed
every `resolve_every_n_steps`, and a histogram per epoch); and `summary()`, the `step_time` block of
results.json. Statistics: mean/std/min/median/p90/p99/max of device time, mean host time and data
wait, data-wait share = wait / (host + wait), images/s = images / (host + wait) (what the run
achieves) and images/s from device time (what the device does), peak device memory (CUDA max
allocated, reset every epoch; on CPU the process's peak RSS).
"""

from __future__ import annotations

import csv
import logging
import math
import resource
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

log = logging.getLogger(__name__)

CSV_FILE = "step_times.csv"
CSV_COLUMNS = ("epoch", "step", "batch_size", "device_ms", "host_ms", "data_wait_ms", "warmup")
PREFIX = "step_time/"
STAT_KEYS = ("mean_ms", "std_ms", "min_ms", "median_ms", "p90_ms", "p99_ms", "max_ms")


class _Row:
    """One training batch. `device_ms` is NaN until its CUDA events have been read."""

    __slots__ = ("epoch", "step", "batch_size", "device_ms", "host_ms", "data_wait_ms", "warmup")

    def __init__(self, epoch: int, step: int, batch_size: int, host_ms: float, data_wait_ms: float,
                 warmup: bool, device_ms: float = math.nan) -> None:
        self.epoch, self.step, self.batch_size = epoch, step, batch_size
        self.host_ms, self.data_wait_ms, self.warmup = host_ms, data_wait_ms, warmup
        self.device_ms = device_ms

    def as_csv(self) -> Tuple[object, ...]:
        return (self.epoch, self.step, self.batch_size, _round(self.device_ms), _round(self.host_ms),
                _round(self.data_wait_ms), int(self.warmup))


def _round(value: float, digits: int = 4) -> Optional[float]:
    return None if value is None or math.isnan(value) else round(float(value), digits)


def describe(values: Sequence[float]) -> Dict[str, Optional[float]]:
    """mean, std (population), min, median, p90, p99, max of `values` in ms (None when empty)."""
    if len(values) == 0:
        return {key: None for key in STAT_KEYS}
    a = np.asarray(values, dtype=np.float64)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    stats = (a.mean(), a.std(), a.min(), p50, p90, p99, a.max())
    return {key: _round(v) for key, v in zip(STAT_KEYS, stats)}


def _first_tensor(batch: Any) -> Optional[torch.Tensor]:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (list, tuple)):
        for item in batch:
            found = _first_tensor(item)
            if found is not None:
                return found
    if isinstance(batch, dict):
        return _first_tensor(list(batch.values()))
    return None


def _compile_count() -> int:
    """Graphs torch.compile has compiled so far in this process (0 if dynamo was never used)."""
    if "torch._dynamo" not in sys.modules:
        return 0
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def _host_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


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
        log_steps: send the per-step series to wandb (if a WandbLogger is present).
        log_histogram: send a histogram of the epoch's step times to wandb.
    """

    def __init__(
        self,
        output_dir: Optional[str] = None,
        warmup_steps: int = 3,
        warmup_on_new_shape: bool = True,
        warmup_on_compile: bool = True,
        resolve_every_n_steps: int = 50,
        csv_file: Optional[str] = CSV_FILE,
        log_steps: bool = True,
        log_histogram: bool = True,
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
        self._reset()

    # ------------------------------------------------------------------ state
    def _reset(self) -> None:
        self.rows: List[_Row] = []
        self.epochs: List[Dict[str, Any]] = []
        self._cuda = False
        self._device: Optional[torch.device] = None
        self._device_name = "cpu"
        self._pending: Deque[Tuple[_Row, Any, Any]] = deque()
        self._events: List[Any] = []  # free CUDA events, reused
        self._seen_shapes: set = set()
        self._batches_in_fit = 0
        self._last_end: Optional[float] = None
        self._open: Optional[Tuple[Any, ...]] = None  # the batch between its start and end hooks
        self._epoch_first_row = 0
        self._logged_rows = 0  # rows already sent as the per-step series
        self._written_rows = 0  # rows already in the CSV
        self._csv_path: Optional[Path] = None
        self._is_writer = True

    def _event(self) -> Any:
        return self._events.pop() if self._events else self._new_event()

    def _new_event(self) -> Any:
        return torch.cuda.Event(enable_timing=True)

    def _reset_peak_mem(self) -> None:
        if self._cuda:
            torch.cuda.reset_peak_memory_stats(self._device)

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
            with self._csv_path.open("w", newline="") as handle:
                csv.writer(handle).writerow(CSV_COLUMNS)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_first_row = len(self.rows)
        self._reset_peak_mem()
        self._last_end = time.perf_counter()

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        now = time.perf_counter()
        wait_ms = (now - self._last_end) * 1e3 if self._last_end is not None else math.nan
        if self._open is not None and self._open[1] is not None:
            self._events.append(self._open[1])  # a batch that never ended (skipped by a hook)
        first = _first_tensor(batch)
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
        self._open = (wait_ms, start_event, batch_size, _compile_count(), warm, trainer.global_step,
                      time.perf_counter())

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        if self._open is None:
            return
        end_event = None
        if self._cuda:
            end_event = self._event()
            end_event.record()
        t_end = time.perf_counter()
        wait_ms, start_event, batch_size, compiles, warm, step, t_start = self._open
        self._open = None
        if self.warmup_on_compile and _compile_count() != compiles:
            warm = True
        host_ms = (t_end - t_start) * 1e3
        row = _Row(trainer.current_epoch, step, batch_size, host_ms, wait_ms, warm,
                   device_ms=math.nan if self._cuda else host_ms)
        self.rows.append(row)
        self._batches_in_fit += 1
        if self._cuda:
            self._pending.append((row, start_event, end_event))
        if self._batches_in_fit % self.resolve_every_n_steps == 0:
            self._resolve(block=False)
            self._flush_step_series(trainer)
        self._last_end = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Validation inside a training epoch is not data wait of the next training batch.
        if self._last_end is not None and not trainer.sanity_checking:
            self._last_end = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close_epoch(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close_epoch(trainer)  # an epoch cut short by max_steps / early stopping
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
        if not (self.log_steps and self._is_writer):
            self._logged_rows = self._resolved_upto()
            return
        upto = self._resolved_upto()
        for logger in _wandb_loggers(trainer):
            for row in self.rows[self._logged_rows:upto]:
                logger.log_metrics({f"{PREFIX}device_ms": row.device_ms, f"{PREFIX}host_ms": row.host_ms,
                                    f"{PREFIX}data_wait_ms": row.data_wait_ms}, step=row.step)
        self._logged_rows = upto

    def _write_csv(self) -> None:
        if self._csv_path is None:
            return
        upto = self._resolved_upto()
        with self._csv_path.open("a", newline="") as handle:
            csv.writer(handle).writerows(r.as_csv() for r in self.rows[self._written_rows:upto])
        self._written_rows = upto

    def _close_epoch(self, trainer: pl.Trainer) -> None:
        if self._epoch_first_row >= len(self.rows):
            return
        self._resolve(block=True)
        self._flush_step_series(trainer)
        self._write_csv()
        rows = self.rows[self._epoch_first_row:]
        self._epoch_first_row = len(self.rows)
        stats = {"epoch": rows[0].epoch, **self._stats(rows, _round(self._peak_mem_mb(), 1))}
        self.epochs.append(stats)
        if self._is_writer:
            self._log_epoch(trainer, stats, [r.device_ms for r in rows if not r.warmup])

    def _peak_mem_mb(self) -> float:
        if self._cuda:
            return torch.cuda.max_memory_allocated(self._device) / 2**20
        return _host_peak_rss_mb()

    def _stats(self, rows: Sequence[_Row], peak_mem_mb: Optional[float]) -> Dict[str, Any]:
        timed = [r for r in rows if not r.warmup]
        device = [r.device_ms for r in timed]
        host = sum(r.host_ms for r in timed)
        wait = sum(r.data_wait_ms for r in timed if not math.isnan(r.data_wait_ms))
        images = sum(r.batch_size for r in timed)
        stats: Dict[str, Any] = {
            "steps": len(rows),
            "timed_steps": len(timed),
            "warmup_steps": len(rows) - len(timed),
            **describe(device),
            "host_mean_ms": _round(host / len(timed)) if timed else None,
            "data_wait_mean_ms": _round(wait / len(timed)) if timed else None,
            "data_wait_share": _round(wait / (host + wait)) if host + wait > 0 else None,
            # Throughput as the run sees it (data wait included), and as the device does.
            "images_per_s": _round(images / (host + wait) * 1e3, 2) if host + wait > 0 else None,
            "images_per_s_device": _round(images / sum(device) * 1e3, 2) if device and sum(device) > 0
            else None,
            "peak_mem_mb": peak_mem_mb,
        }
        return stats

    def _log_epoch(self, trainer: pl.Trainer, stats: Dict[str, Any], device_ms: List[float]) -> None:
        metrics = {f"{PREFIX}{k}": float(v) for k, v in stats.items()
                   if k not in ("epoch", "steps") and v is not None}
        metrics["epoch"] = float(stats["epoch"])
        step = max(trainer.global_step - 1, 0)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        if self.log_histogram and device_ms:
            for logger in _wandb_loggers(trainer):
                import wandb

                logger.experiment.log({f"{PREFIX}hist_ms": wandb.Histogram(device_ms),
                                       "trainer/global_step": step})

    def _write_wandb_summary(self, trainer: pl.Trainer) -> None:
        if not self._is_writer:
            return
        flat = {f"{PREFIX}{k}": v for k, v in self.summary().items()
                if isinstance(v, (int, float, str)) and v is not None}
        for logger in _wandb_loggers(trainer):
            logger.experiment.summary.update(flat)

    # ------------------------------------------------------------------ results
    def load_csv(self, path: Path) -> None:
        """Take the rows (and per-epoch statistics) from a step_times.csv this callback wrote."""
        def num(text: str) -> float:
            return float(text) if text not in ("", None) else math.nan

        with Path(path).open(newline="") as handle:
            self.rows = [_Row(int(r["epoch"]), int(r["step"]), int(r["batch_size"]), num(r["host_ms"]),
                              num(r["data_wait_ms"]), r["warmup"] == "1", device_ms=num(r["device_ms"]))
                         for r in csv.DictReader(handle)]
        self._cuda = any(abs(r.device_ms - r.host_ms) > 1e-6 for r in self.rows)
        self._device_name = f"{'cuda' if self._cuda else 'cpu'} (read back from {Path(path).name})"
        self._csv_path = Path(path)
        epochs = sorted({r.epoch for r in self.rows})
        self.epochs = [{"epoch": e, **self._stats([r for r in self.rows if r.epoch == e], None)} for e in epochs]

    def summary(self) -> Dict[str, Any]:
        """The `step_time` block of results.json: statistics over all timed batches of the fit."""
        return {
            "timer": "cuda_events" if self._cuda else "host",
            "device": self._device_name,
            **self._stats(self.rows, max((e["peak_mem_mb"] for e in self.epochs
                                          if e["peak_mem_mb"] is not None), default=None)),
            "peak_mem": "cuda_max_allocated" if self._cuda else "host_max_rss",
            "warmup": {"steps": self.warmup_steps, "new_shape": self.warmup_on_new_shape,
                       "compile": self.warmup_on_compile},
            "csv": self.csv_file if self._csv_path is not None else None,
            "per_epoch": list(self.epochs),
        }


def _wandb_loggers(trainer: pl.Trainer) -> List[Any]:
    from pytorch_lightning.loggers import WandbLogger

    return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]


def step_time_summary(trainer: pl.Trainer) -> Optional[Dict[str, Any]]:
    """The summary of the trainer's StepTimer, or None when the run has none (for results.json).

    Under `ddp_spawn` the timing happened in the rank processes: the summary is then rebuilt from
    rank 0's step_times.csv (without peak memory)."""
    timer = next((cb for cb in trainer.callbacks if isinstance(cb, StepTimer)), None)
    if timer is None:
        return None
    if not timer.rows and timer.csv_file:
        path = Path(timer.output_dir or trainer.default_root_dir) / timer.csv_file
        if path.is_file():
            timer.load_csv(path)
    return timer.summary() if timer.rows else None
