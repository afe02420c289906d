"""What callbacks and the module read off the trainer, a batch and the loaders, through public API."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytorch_lightning as pl


def logging_due(trainer: pl.Trainer, step: int) -> bool:
    """True if the loggers write the training batch that starts at global step `step` (every
    `trainer.log_every_n_steps` optimizer steps). In `on_train_batch_end` pass `trainer.global_step - 1`."""
    every = trainer.log_every_n_steps
    return bool(every) and (step + 1) % every == 0


def first_found(tree: Any, pick: Callable[[Any], Any]) -> Any:
    """The first non-None `pick(x)` over `tree`, then (depth first) the items of its lists, tuples and dicts."""
    found = pick(tree)
    if found is None and isinstance(tree, (list, tuple, Mapping)):
        items = tree.values() if isinstance(tree, Mapping) else tree
        found = next((f for f in (first_found(item, pick) for item in items) if f is not None), None)
    return found
