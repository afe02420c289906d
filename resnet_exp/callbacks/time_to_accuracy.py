"""Accuracy against cumulative training wall time: the curve time-to-accuracy comparisons use.

`TrainClock` (driven by the StepTimer's hooks) runs while the fit trains and stops during
validation; at the end of every validation (not the sanity check) it records one point: epoch,
optimizer step, training seconds so far, and the validation metrics then logged (val/acc, val/loss).
On CUDA the clock synchronizes once when a validation starts, so that queued training work is
counted as training. Points go to `time_to_accuracy.csv` in the run folder (continued on resume)
and to results.json (`time_to_accuracy`).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from resnet_exp.io import rounded
from resnet_exp.speed import synchronize

TTA_FILE = "time_to_accuracy.csv"
TTA_COLUMNS = ("epoch", "step", "train_time_s", "val/acc", "val/loss")


class TrainClock:
    def __init__(self) -> None:
        self.points: list[dict[str, Any]] = []
        self._total = 0.0
        self._since: float | None = None
        self._path: Path | None = None

    def start_fit(self, path: Path | None, steps_done: int) -> None:
        """A new fit: continue the file's points of the first `steps_done` steps (resume)."""
        self._path, self._since = path, None
        self.points = [p for p in read_points(path) if p["step"] <= steps_done] if path and steps_done else []
        self._total = self.points[-1]["train_time_s"] if self.points else 0.0
        if path is not None:
            write_points(path, self.points)

    def run(self) -> None:
        if self._since is None:
            self._since = time.perf_counter()

    def pause(self, device: torch.device) -> None:
        if self._since is not None:
            synchronize(device)
            self._total += time.perf_counter() - self._since
            self._since = None

    def record(self, epoch: int, step: int, metrics: Mapping[str, Any]) -> None:
        point = {"epoch": epoch, "step": step, "train_time_s": rounded(self._total, 4)}
        for key in TTA_COLUMNS[3:]:
            value = metrics.get(key)
            point[key] = rounded(float(value), 6) if value is not None else None
        self.points.append(point)
        if self._path is not None:
            with self._path.open("a", newline="") as handle:
                csv.writer(handle).writerow(["" if point[c] is None else point[c] for c in TTA_COLUMNS])


def write_points(path: Path, points: list[Mapping[str, Any]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(TTA_COLUMNS)
        writer.writerows(["" if p.get(c) is None else p[c] for c in TTA_COLUMNS] for p in points)


def read_points(path: Path | None) -> list[dict[str, Any]]:
    """The points of a time_to_accuracy.csv (empty when there is none)."""
    if path is None or not Path(path).is_file():
        return []
    with Path(path).open(newline="") as handle:
        return [{"epoch": int(r["epoch"]), "step": int(r["step"]), "train_time_s": float(r["train_time_s"]),
                 **{c: float(r[c]) if r.get(c) else None for c in TTA_COLUMNS[3:]}}
                for r in csv.DictReader(handle)]
