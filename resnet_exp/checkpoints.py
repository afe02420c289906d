"""Checkpoint files of a run: where the latest one lives, and whether one fits a model."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from resnet_exp.errors import UserError

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


def load_header(path: str | Path) -> dict:
    """A checkpoint's dict with its tensors memory-mapped (only headers are read, not weights)."""
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def check_checkpoint_fits(checkpoint: str, state: Mapping[str, torch.Tensor], arch: str) -> None:
    """Fail in one line if the checkpoint's weights do not fit the model built from the config."""
    saved = load_header(checkpoint).get("state_dict", {})
    missing = sorted(set(state) - set(saved))
    if missing:
        raise UserError(f"ckpt_path={checkpoint}: does not fit arch={arch}: {missing[0]} is not in it")
    for key, tensor in state.items():
        if tuple(saved[key].shape) != tuple(tensor.shape):
            raise UserError(f"ckpt_path={checkpoint}: does not fit arch={arch}: {key} is "
                            f"{list(saved[key].shape)} there, {list(tensor.shape)} here")
