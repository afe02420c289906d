"""Lightning's ModelCheckpoint with less work per training batch, and checkpoint files written atomically."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint as LightningModelCheckpoint

from resnet_exp.io import write_atomic


class ModelCheckpoint(LightningModelCheckpoint):
    """The same callback and the same checkpoints, cheaper per batch. Lightning names every
    callback hook call for its profiler after the callback's `state_key`, which ModelCheckpoint
    rebuilds from its arguments each time (a dict repr): about a dozen times per training batch for
    the run's two checkpoint callbacks. The arguments never change after construction, so neither
    does the key."""

    @functools.cached_property
    def state_key(self) -> str:  # type: ignore[override]
        return super().state_key


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temp file next to it, then rename it into place: a process
    killed at any moment leaves either the previous file or the new one, never half of one.
    (Lightning's own save stages in the system temp dir and copies across file systems.)"""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        write_atomic(Path(path), lambda handle: torch.save(checkpoint, handle), binary=True)
