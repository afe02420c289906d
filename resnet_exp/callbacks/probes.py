"""What the step timer reads off a batch and off the process, apart from the clock."""

from __future__ import annotations

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
    if "torch._dynamo" not in sys.modules:
        return 0
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]
