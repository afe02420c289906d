"""Lightning's ModelCheckpoint with paths relative to its folder, and checkpoint files written atomically."""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint as LightningModelCheckpoint

from resnet_exp.io import write_atomic

# The paths in ModelCheckpoint's state besides `dirpath` and the keys of best_k_models.
PATH_KEYS = ("best_model_path", "kth_best_model_path", "last_model_path")


def _with_paths(state: dict[str, Any], dirpath: str | None, path_of: Callable[[str], str]) -> dict[str, Any]:
    """`state` with `dirpath`, and every other path in it mapped by `path_of`."""
    return {**state, "dirpath": dirpath, **{key: path_of(state.get(key) or "") for key in PATH_KEYS},
            "best_k_models": {path_of(path): score for path, score in state.get("best_k_models", {}).items()}}


class ModelCheckpoint(LightningModelCheckpoint):
    """Lightning's callback with `{epoch}` counted from 1 in file names, paths relative to the checkpoint folder
    in its state (a moved run folder ranks its own files), no "exists and is not empty" warning for the run's
    own folder, and `state_key` (built for about a dozen hook calls per batch) computed once."""

    @functools.cached_property
    def state_key(self) -> str:  # type: ignore[override]
        return super().state_key

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        folder = Path(state["dirpath"]) if state.get("dirpath") else None
        return _with_paths(state, ".", lambda path: Path(path).name if path and Path(path).parent == folder else path)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved_dir = Path(state_dict.get("dirpath") or "")

        def here(path: str) -> str:
            # A name (this class's state) or a path in the folder it was saved in (Lightning's own).
            if path and (not Path(path).is_absolute() or Path(path).parent == saved_dir):
                return str(Path(self.dirpath or ".") / Path(path).name)
            return path

        state = _with_paths(state_dict, self.dirpath, here)
        named = [state[key] for key in PATH_KEYS if state[key]] + list(state["best_k_models"])
        if all(Path(path).is_file() for path in named):
            super().load_state_dict(state)

    def format_checkpoint_name(self, metrics: dict[str, Any], filename: str | None = None,
                               ver: int | None = None, prefix: str | None = None) -> str:
        if "epoch" in metrics:
            metrics = {**metrics, "epoch": metrics["epoch"] + 1}
        return super().format_checkpoint_name(metrics, filename, ver, prefix)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        root = Path(trainer.default_root_dir).resolve()
        with warnings.catch_warnings():
            if self.dirpath is None or Path(self.dirpath).resolve().is_relative_to(root):
                warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
            super().setup(trainer, pl_module, stage)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        with warnings.catch_warnings():
            if trainer.limit_val_batches == 0:  # no validation: no val/acc to select on, by the user's choice
                warnings.filterwarnings("ignore", message=r".*could not find the monitored key")
            super().on_train_epoch_end(trainer, pl_module)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temp file next to it, then renames it into place: a kill leaves no half file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        write_atomic(Path(path), lambda handle: torch.save(checkpoint, handle), binary=True)
