"""StepTimer's record (step_times.csv) and its statistics (README: "Step times"); no Lightning, no CUDA."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resnet_exp.io import rounded, write_csv

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
    gap_held: str = ""  # what else the gap before the batch held: "val", "checkpoint", "val+checkpoint" or ""

    def as_csv(self) -> tuple[object, ...]:
        peak = "" if math.isnan(self.peak_mem_mb) else rounded(self.peak_mem_mb, 1)
        return (self.epoch, self.step, self.batch_size, rounded(self.device_ms), rounded(self.host_ms),
                rounded(self.data_wait_ms), int(self.warmup), rounded(self.between_ms), peak, self.gap_held)


def finite_mean(values: Sequence[float]) -> float:
    """The mean of the values that are not NaN (NaN if none)."""
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def describe(values: Sequence[float]) -> dict[str, float | None]:
    """mean, std (population), min, median, p90, p99, max of `values` in ms (None when empty)."""
    a = np.asarray(values, dtype=np.float64)
    stats = (a.mean(), a.std(), *np.percentile(a, [0, 50, 90, 99, 100])) if a.size else [None] * len(STAT_KEYS)
    return {key: rounded(v) for key, v in zip(STAT_KEYS, stats)}


def step_stats(rows: Sequence[StepRow]) -> dict[str, Any]:
    """Statistics of `rows` (a fit or one epoch) over the batches that are not warm-up."""
    timed = [r for r in rows if not r.warmup]
    device = [r.device_ms for r in timed]
    host = sum(r.host_ms for r in timed)
    wait = sum(r.data_wait_ms for r in timed if not math.isnan(r.data_wait_ms))
    # A gap that held a validation or checkpoint save (or was not measured) counts only its data wait.
    between = sum(r.between_ms if not (r.gap_held or math.isnan(r.between_ms)) else
                  0.0 if math.isnan(r.data_wait_ms) else r.data_wait_ms for r in timed)
    images = sum(r.batch_size for r in timed)
    loop = host + between
    return {
        "steps": len(rows), "timed_steps": len(timed), "warmup_steps": len(rows) - len(timed),
        **describe(device),
        "host_mean_ms": rounded(host / len(timed)) if timed else None,
        "data_wait_mean_ms": rounded(wait / len(timed)) if timed else None,
        "between_mean_ms": rounded(between / len(timed)) if timed else None,
        "data_wait_share": rounded(wait / loop) if loop > 0 else None,
        # Throughput as the run sees it (data wait and loop work included), and as the device does.
        "images_per_s": rounded(images / loop * 1e3, 2) if loop > 0 else None,
        "images_per_s_device": rounded(images / sum(device) * 1e3, 2) if device and sum(device) > 0 else None,
        "peak_mem_mb": max((r.peak_mem_mb for r in rows if not math.isnan(r.peak_mem_mb)), default=None),
        # Timed batches whose gap held a validation or checkpoint save (left out of between/images_per_s).
        "gap_held_steps": sum(1 for r in timed if r.gap_held),
    }


def step_time_block(rows: Sequence[StepRow], *, device: str, cuda: bool, warmup: Mapping[str, Any],
                    csv_file: str | None) -> dict[str, Any]:
    """results.json's `step_time` block: statistics over all `rows` of a fit, and per epoch."""
    epochs = sorted({r.epoch for r in rows})
    return {"timer": "cuda_events" if cuda else "host", "device": device, **step_stats(rows),
            "peak_mem": "cuda_max_allocated" if cuda else "host_max_rss", "warmup": dict(warmup), "csv": csv_file,
            "per_epoch": [{"epoch": e, **step_stats([r for r in rows if r.epoch == e])} for e in epochs]}


def continue_csv(path: Path, steps_done: int) -> list[StepRow]:
    """Rewrite the CSV with only the rows of the `steps_done` steps a resumed fit keeps, and return them."""
    rows = [r for r in read_csv(path) if r.step < steps_done] if steps_done and path.is_file() else []
    write_csv(path, CSV_COLUMNS, (r.as_csv() for r in rows))
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
