"""What callbacks and the module read off a batch and the trainer, through public API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch


def logging_due(trainer: pl.Trainer, step: int) -> bool:
    """True if the loggers write the training batch that starts at global step `step` (every
    `trainer.log_every_n_steps` optimizer steps). In `on_train_batch_end` pass `trainer.global_step - 1`."""
    every = trainer.log_every_n_steps
    return bool(every) and (step + 1) % every == 0


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


def fetch_clock(trainer: pl.Trainer) -> Any:
    """The training loader's FetchClock (its `fetch_clock`, see resnet_exp.data.resumable), or None."""
    return _find_clock(trainer.train_dataloader)


def _find_clock(loaders: Any) -> Any:  # a loader, or a collection of them
    clock = getattr(loaders, "fetch_clock", None)
    if clock is not None:
        return clock
    if isinstance(loaders, Mapping):
        loaders = list(loaders.values())
    if isinstance(loaders, (list, tuple)):
        for loader in loaders:
            if (clock := _find_clock(loader)) is not None:
                return clock
    return None
