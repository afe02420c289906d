"""The per-batch record of StepTimer, its CSV file (step_times.csv) and the statistics over it.

A row (one training batch): epoch, step = `trainer.global_step` when the batch started,
batch_size, and
- device_ms: time on the device, from CUDA events (without CUDA: host_ms),
- host_ms: wall time from `on_train_batch_start` to `on_train_batch_end` (on a GPU this is the
  time to launch the step, not to compute it, unless the host had to wait for the device),
- data_wait_ms: host time spent inside the training loader's `next()` between the end of the
  previous batch and the start of this one (the loader's FetchClock; NaN for a loader without
  one). With data.loader=gpu this is the host time of gathering, augmenting and normalising on the
  device (launches; the device time of that work lands in device_ms of the step it overlaps,
  since Lightning fetches one batch ahead),
- between_ms: the whole host gap between the end of one batch and the start of the next: the
  data wait plus Lightning's loop work (logging, checkpoints, progress bar); for the first batch
  of an epoch, from the epoch start,
- warmup 0/1: left out of every statistic.

Statistics: mean/std/min/median/p90/p99/max of device time, mean host time and data wait,
data-wait share = wait / (host + between), images/s = images / (host + between) (what the run
achieves)
and images/s from device time (what the device does). Pure bookkeeping: no Lightning, no CUDA.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from resnet_exp.io import rounded, write_atomic

CSV_COLUMNS = ("epoch", "step", "batch_size", "device_ms", "host_ms", "data_wait_ms", "warmup", "between_ms")
STAT_KEYS = ("mean_ms", "std_ms", "min_ms", "median_ms", "p90_ms", "p99_ms", "max_ms")


class StepRow:
    """One training batch. `device_ms` is NaN until its CUDA events have been read."""

    __slots__ = ("epoch", "step", "batch_size", "device_ms", "host_ms", "data_wait_ms", "warmup", "between_ms")

    def __init__(self, epoch: int, step: int, batch_size: int, host_ms: float, data_wait_ms: float,
                 warmup: bool, device_ms: float = math.nan, between_ms: float = math.nan) -> None:
        self.epoch, self.step, self.batch_size = epoch, step, batch_size
        self.host_ms, self.data_wait_ms, self.warmup = host_ms, data_wait_ms, warmup
        self.device_ms, self.between_ms = device_ms, between_ms

    def as_csv(self) -> tuple[object, ...]:
        return (self.epoch, self.step, self.batch_size, rounded(self.device_ms), rounded(self.host_ms),
                rounded(self.data_wait_ms), int(self.warmup), rounded(self.between_ms))


def describe(values: Sequence[float]) -> dict[str, float | None]:
    """mean, std (population), min, median, p90, p99, max of `values` in ms (None when empty)."""
    if len(values) == 0:
        return {key: None for key in STAT_KEYS}
    a = np.asarray(values, dtype=np.float64)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    stats = (a.mean(), a.std(), a.min(), p50, p90, p99, a.max())
    return {key: rounded(v) for key, v in zip(STAT_KEYS, stats)}


def step_stats(rows: Sequence[StepRow], peak_mem_mb: float | None) -> dict[str, Any]:
    """Statistics of `rows` (a fit or one epoch) over the batches that are not warm-up."""
    timed = [r for r in rows if not r.warmup]
    device = [r.device_ms for r in timed]
    host = sum(r.host_ms for r in timed)
    wait = sum(r.data_wait_ms for r in timed if not math.isnan(r.data_wait_ms))
    between = sum(r.between_ms if not math.isnan(r.between_ms) else
                  (r.data_wait_ms if not math.isnan(r.data_wait_ms) else 0.0) for r in timed)
    images = sum(r.batch_size for r in timed)
    return {
        "steps": len(rows),
        "timed_steps": len(timed),
        "warmup_steps": len(rows) - len(timed),
        **describe(device),
        "host_mean_ms": rounded(host / len(timed)) if timed else None,
        "data_wait_mean_ms": rounded(wait / len(timed)) if timed else None,
        "between_mean_ms": rounded(between / len(timed)) if timed else None,
        "data_wait_share": rounded(wait / (host + between)) if host + between > 0 else None,
        # Throughput as the run sees it (data wait and loop work included), and as the device does.
        "images_per_s": rounded(images / (host + between) * 1e3, 2) if host + between > 0 else None,
        "images_per_s_device": rounded(images / sum(device) * 1e3, 2) if device and sum(device) > 0
        else None,
        "peak_mem_mb": peak_mem_mb,
    }


def per_epoch_stats(rows: Sequence[StepRow]) -> list[dict[str, Any]]:
    """step_stats of each epoch in `rows` (without peak memory), e.g. of rows read back from a CSV."""
    epochs = sorted({r.epoch for r in rows})
    return [{"epoch": e, **step_stats([r for r in rows if r.epoch == e], None)} for e in epochs]


# ---------------------------------------------------------------------------- step_times.csv
def start_csv(path: Path) -> None:
    """Create (or truncate) the CSV with only its header; rows are appended as they resolve."""
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerow(CSV_COLUMNS)


def continue_csv(path: Path, steps_done: int) -> list[StepRow]:
    """For a resumed fit: keep the rows of the `steps_done` steps the checkpoint covers (later
    ones were redone), rewrite the CSV with them (atomically: a kill now loses nothing) and
    return them; else start a fresh CSV."""
    rows = [r for r in read_csv(path) if r.step < steps_done] if steps_done and path.is_file() else []

    def write(handle: Any) -> None:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(r.as_csv() for r in rows)

    write_atomic(path, write)
    return rows


def append_csv(path: Path, rows: Sequence[StepRow]) -> None:
    with path.open("a", newline="") as handle:
        csv.writer(handle).writerows(r.as_csv() for r in rows)


def read_csv(path: Path) -> list[StepRow]:
    """The rows of a step_times.csv written by start_csv / append_csv (empty cells read as NaN)."""
    def num(text: str) -> float:
        return float(text) if text not in ("", None) else math.nan

    with Path(path).open(newline="") as handle:
        # A row cut short by a killed process lacks its last cells: left out.
        return [StepRow(int(r["epoch"]), int(r["step"]), int(r["batch_size"]), num(r["host_ms"]),
                        num(r["data_wait_ms"]), r["warmup"] == "1", device_ms=num(r["device_ms"]),
                        between_ms=num(r.get("between_ms")))
                for r in csv.DictReader(handle) if None not in r.values()]
