"""Checkpoint files of a run: written atomically, the newest loadable one found, fit checked."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from resnet_exp.errors import UserError, first_line
from resnet_exp.results import write_atomic

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
# write_atomic's temp files: `.<name>.<random>.tmp` next to the file being written.
TEMP_GLOB = ".*.tmp"


def load_header(path: str | Path) -> dict:
    """A checkpoint's dict with its tensors memory-mapped (only headers are read, not weights)."""
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def readable_checkpoint(path: str | Path, key: str = "ckpt_path") -> dict:
    """`load_header(path)`, or a one-line UserError naming the file when it is not a checkpoint."""
    try:
        saved = load_header(path)
    except FileNotFoundError:
        raise UserError(f"{key}={path}: no such file") from None
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for junk
        raise UserError(f"{path}: not a readable checkpoint ({first_line(exc)[:120]}); "
                        "pass a .ckpt file written by a run") from None
    if not isinstance(saved, dict) or "state_dict" not in saved:
        raise UserError(f"{path}: not a readable checkpoint (no state_dict in it); "
                        "pass a .ckpt file written by a run")
    return saved


def newest_loadable(folder: Path) -> Path | None:
    """The checkpoint in `folder` that got furthest (by step, then epoch) among those that load;
    `last.ckpt` wins a tie. Files that do not load (cut short by a crash) are skipped."""
    best: tuple[tuple[int, int, bool], Path] | None = None
    for path in sorted(folder.glob("*.ckpt")):
        try:
            saved = load_header(path)
            rank = (int(saved["global_step"]), int(saved["epoch"]), path.name == "last.ckpt")
        except Exception as exc:
            # Called before logging is set up (while the command line is expanded).
            print(f"warning: skipping {path}: not a readable checkpoint ({first_line(exc)[:120]})",
                  file=sys.stderr)
            continue
        if best is None or rank > best[0]:
            best = (rank, path)
    return best[1] if best else None


def remove_temp_files(folder: Path) -> None:
    """Delete checkpoint temp files left by a process killed while writing one."""
    for path in folder.glob(TEMP_GLOB):
        path.unlink(missing_ok=True)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temp file next to it, then rename it into place: a process
    killed at any moment leaves either the previous file or the new one, never half of one.
    (Lightning's own save stages in the system temp dir and copies across file systems.)"""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        write_atomic(Path(path), lambda handle: torch.save(checkpoint, handle), binary=True)


def check_checkpoint_fits(checkpoint: str, state: Mapping[str, torch.Tensor], arch: str) -> None:
    """Fail in one line if the checkpoint's weights do not fit the model built from the config."""
    saved = readable_checkpoint(checkpoint).get("state_dict", {})
    missing = sorted(set(state) - set(saved))
    if missing:
        raise UserError(f"ckpt_path={checkpoint}: does not fit arch={arch}: {missing[0]} is not in it")
    for key, tensor in state.items():
        if tuple(saved[key].shape) != tuple(tensor.shape):
            raise UserError(f"ckpt_path={checkpoint}: does not fit arch={arch}: {key} is "
                            f"{list(saved[key].shape)} there, {list(tensor.shape)} here")
