"""What a fit's StepTimer contributes to results.json: the `step_time` block and the
accuracy-vs-training-time points (read back from the run folder under ddp_spawn)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from resnet_exp.callbacks.step_timer import StepTimer
from resnet_exp.callbacks.time_to_accuracy import read_points


def step_time_summary(trainer: pl.Trainer) -> dict[str, Any] | None:
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


def time_to_accuracy(trainer: pl.Trainer) -> list[dict[str, Any]] | None:
    """The StepTimer's accuracy-vs-training-time points (for results.json), None without a timer;
    under ddp_spawn read back from rank 0's file."""
    timer = next((cb for cb in trainer.callbacks if isinstance(cb, StepTimer)), None)
    if timer is None:
        return None
    if timer.clock.points:
        return list(timer.clock.points)
    return read_points(timer.tta_path(trainer))
