"""The record of StepTimer, its CSV file (step_times.csv) and the statistics over it.

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
  data wait plus Lightning's loop work (logging, progress bar); for the first batch of an epoch,
  from the epoch start; after a validation inside the epoch, from the validation's end,
- warmup 0/1: left out of every statistic,
- peak_mem_mb: on the last row of each epoch, the epoch's peak memory (CUDA max allocated; on
  CPU the process's peak RSS); empty on the other rows,
- gap_held: what else the gap before this batch held: `val` (a validation ran; its own time is
  not in between_ms, but the hooks after it are), `checkpoint` (a checkpoint was saved),
  `val+checkpoint`, or empty. Such a gap is left out of the statistics: only its data wait counts.

Statistics: mean/std/min/median/p90/p99/max of device time, mean host time and data wait,
data-wait share = wait / (host + between), images/s = images / (host + between) (what the run
achieves; a gap that held a validation or a checkpoint save counts only its data wait) and images/s
from device time (what the device does). `step_time_block` turns rows
into the `step_time` block of results.json. Pure bookkeeping: no Lightning, no CUDA.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resnet_exp.io import rounded, write_atomic

CSV_COLUMNS = ("epoch", "step", "batch_size", "device_ms", "host_ms", "data_wait_ms", "warmup", "between_ms",
               "peak_mem_mb", "gap_held")
STAT_KEYS = ("mean_ms", "std_ms", "min_ms", "median_ms", "p90_ms", "p99_ms", "max_ms")


@dataclass(slots=True)
class StepRow:
    """One training batch. `device_ms` is NaN until its CUDA events have been read."""

    epoch: int
    step: int
    batch_size: int
    host_ms: float
    data_wait_ms: float
    warmup: bool
    device_ms: float = math.nan
    between_ms: float = math.nan
    peak_mem_mb: float = math.nan
    gap_held: str = ""  # "val", "checkpoint", "val+checkpoint" or "": see the module docstring

    def as_csv(self) -> tuple[object, ...]:
        peak = "" if math.isnan(self.peak_mem_mb) else rounded(self.peak_mem_mb, 1)
        return (self.epoch, self.step, self.batch_size, rounded(self.device_ms), rounded(self.host_ms),
                rounded(self.data_wait_ms), int(self.warmup), rounded(self.between_ms), peak, self.gap_held)

    def loop_gap_ms(self) -> float:
        """The gap before this batch as the statistics count it: between_ms, or only the data wait
        when the gap held a validation or checkpoint save (or was not measured)."""
        if not self.gap_held and not math.isnan(self.between_ms):
            return self.between_ms
        return 0.0 if math.isnan(self.data_wait_ms) else self.data_wait_ms


def describe(values: Sequence[float]) -> dict[str, float | None]:
    """mean, std (population), min, median, p90, p99, max of `values` in ms (None when empty)."""
    if len(values) == 0:
        return {key: None for key in STAT_KEYS}
    a = np.asarray(values, dtype=np.float64)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    stats = (a.mean(), a.std(), a.min(), p50, p90, p99, a.max())
    return {key: rounded(v) for key, v in zip(STAT_KEYS, stats)}


def peak_mem_mb(rows: Sequence[StepRow]) -> float | None:
    """The highest peak memory recorded in `rows` (None if none was)."""
    return max((r.peak_mem_mb for r in rows if not math.isnan(r.peak_mem_mb)), default=None)


def step_stats(rows: Sequence[StepRow]) -> dict[str, Any]:
    """Statistics of `rows` (a fit or one epoch) over the batches that are not warm-up."""
    timed = [r for r in rows if not r.warmup]
    device = [r.device_ms for r in timed]
    host = sum(r.host_ms for r in timed)
    wait = sum(r.data_wait_ms for r in timed if not math.isnan(r.data_wait_ms))
    between = sum(r.loop_gap_ms() for r in timed)
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
        "peak_mem_mb": peak_mem_mb(rows),
        # Timed batches whose gap held a validation or checkpoint save (left out of between/images_per_s).
        "gap_held_steps": sum(1 for r in timed if r.gap_held),
    }


def per_epoch_stats(rows: Sequence[StepRow]) -> list[dict[str, Any]]:
    """step_stats of each epoch in `rows`, in epoch order."""
    epochs = sorted({r.epoch for r in rows})
    return [{"epoch": e, **step_stats([r for r in rows if r.epoch == e])} for e in epochs]


def step_time_block(rows: Sequence[StepRow], *, device: str, cuda: bool, warmup: Mapping[str, Any],
                    csv_file: str | None) -> dict[str, Any]:
    """The `step_time` block of results.json: statistics over all `rows` of a fit, and per epoch.

    `device` names the device, `cuda` says whether device times come from CUDA events (and peak
    memory from the CUDA allocator), `warmup` holds the timer's warm-up settings and `csv_file`
    the name of the record the rows were read from."""
    return {
        "timer": "cuda_events" if cuda else "host",
        "device": device,
        **step_stats(rows),
        "peak_mem": "cuda_max_allocated" if cuda else "host_max_rss",
        "warmup": dict(warmup),
        "csv": csv_file,
        "per_epoch": per_epoch_stats(rows),
    }


# ---------------------------------------------------------------------------- step_times.csv
def continue_csv(path: Path, steps_done: int) -> list[StepRow]:
    """For a resumed fit: keep the rows of the `steps_done` steps the checkpoint covers (later
    ones were redone), rewrite the CSV with them (atomically: a kill now loses nothing) and
    return them; else start a fresh CSV holding only its header."""
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
    """The rows of a step_times.csv (empty cells and columns a file lacks read as NaN)."""
    def num(text: str | None) -> float:
        return float(text) if text not in ("", None) else math.nan

    with Path(path).open(newline="") as handle:
        # A row cut short by a killed process lacks its last cells: left out.
        return [StepRow(int(r["epoch"]), int(r["step"]), int(r["batch_size"]), num(r["host_ms"]),
                        num(r["data_wait_ms"]), r["warmup"] == "1", device_ms=num(r["device_ms"]),
                        between_ms=num(r.get("between_ms")), peak_mem_mb=num(r.get("peak_mem_mb")),
                        gap_held=r.get("gap_held") or "")
                for r in csv.DictReader(handle) if None not in r.values()]
