"""What the step timer reads off a batch, the trainer and the process, apart from the clock."""

from __future__ import annotations

import math
import sys
from typing import Any

import torch


def first_tensor(batch: Any) -> torch.Tensor | None:
    """The first tensor in a batch (its leading dimension is the batch size)."""
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (list, tuple)):
        for item in batch:
            found = first_tensor(item)
            if found is not None:
                return found
    if isinstance(batch, dict):
        return first_tensor(list(batch.values()))
    return None


def compile_count() -> int:
    """Graphs torch.compile has compiled so far in this process (0 if dynamo was never used)."""
    utils = sys.modules.get("torch._dynamo.utils")  # not imported here: it is slow to import
    return utils.counters["stats"]["unique_graphs"] if utils is not None else 0


def finite_mean(values: list[float]) -> float:
    """The mean of the values that are not NaN (NaN if none)."""
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def fetch_clock(trainer: Any) -> Any:
    """The training loader's FetchClock (resnet_exp.data.resumable), or None."""
    loop = getattr(trainer, "fit_loop", None)
    combined = getattr(loop, "_combined_loader", None)
    for loader in getattr(combined, "flattened", None) or []:
        clock = getattr(loader, "fetch_clock", None)
        if clock is not None:
            return clock
    return None


def wandb_loggers(trainer: Any) -> list[Any]:
    """The trainer's wandb loggers."""
    from pytorch_lightning.loggers import WandbLogger

    return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
