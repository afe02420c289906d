"""SyncGuard: fail a fit that reads a device value on the host in a training step that is not a logging step.
Armed from a batch's start until the next batch, validation, the epoch or fit end: `READERS` of a tensor on the
model's device and `torch.tensor(<Python value>, device=<that device>)` raise `HostSyncError`, except in the
data pipeline; on CUDA, `torch.cuda.set_sync_debug_mode("error")` is set while armed too.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from resnet_exp.callbacks.probes import logging_due

READERS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__", "__array__")
FACTORIES = ("tensor", "as_tensor")
# Frames of the data pipeline: host tensors read there are no device sync.
EXEMPT_PATHS = ("/torch/utils/data/", "/torchvision/transforms/", "/resnet_exp/data/")


class HostSyncError(RuntimeError):
    """A tensor value was read on the host during a training step that is not a logging step."""


class SyncGuard(Callback):
    """Raises `HostSyncError` on a host read of a device value in a training step that is not a logging step."""

    def __init__(self) -> None:
        super().__init__()
        self.violations: list[str] = []
        self.guarded_steps = 0
        self._device: torch.device | None = None
        self._step = -1
        self._armed = False
        self._busy = False  # inside a guarded call: nested calls are the same read
        self._originals: dict[tuple[Any, str], Callable[..., Any]] = {}  # (torch.Tensor or torch, name) -> original

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._device = pl_module.device
        if self._originals:
            return
        for owner, names in ((torch.Tensor, READERS), (torch, FACTORIES)):
            for name in names:
                self._originals[(owner, name)] = original = getattr(owner, name)
                setattr(owner, name, self._guarded(owner is torch.Tensor, name, original))

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._step = trainer.global_step
        guarded = not logging_due(trainer, self._step)
        self.guarded_steps += guarded
        self._arm(guarded)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        # Callbacks listed before the guard start the next step before it does: off already if that
        # step is a logging step (Lightning's LearningRateMonitor reads the rates then).
        if logging_due(trainer, trainer.global_step):
            self._arm(False)

    def _disarm(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._arm(False)

    on_validation_start = on_train_epoch_end = on_train_end = _disarm

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *exception: BaseException) -> None:
        self._arm(False)
        for (owner, name), original in self._originals.items():
            setattr(owner, name, original)
        self._originals = {}

    on_exception = on_fit_end

    def _arm(self, on: bool) -> None:
        if on != self._armed and self._device is not None and self._device.type == "cuda":
            torch.cuda.set_sync_debug_mode("error" if on else "default")
        self._armed = on

    def _on_device(self, device: torch.device) -> bool:
        own = self._device
        return (own is not None and device.type == own.type
                and (device.index is None or own.index is None or device.index == own.index))

    def _trip(self, what: str) -> None:
        """Raise HostSyncError for `what` unless the data pipeline read it; the guard is off meanwhile."""
        self._busy = True
        try:
            caller = sys._getframe(1)  # the guarded wrapper; the stack is walked only when a read happened
            files = (frame.f_code.co_filename.replace("\\", "/") for frame, _ in traceback.walk_stack(caller))
            if any(path in file for file in files for path in EXEMPT_PATHS):
                return
            message = (f"{what} during training step {self._step} (not a logging step) at "
                       f"{caller.f_code.co_filename}:{caller.f_lineno}: a host read of a device value, i.e. a "
                       "host-device sync per step")
            self.violations.append(message)
            raise HostSyncError(message)
        finally:
            self._busy = False

    def _guarded(self, reader: bool, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        """`Tensor.<name>` (a `reader`) or `torch.<name>` (a factory), checked while the guard is armed."""
        def guarded(data: Any, *args: Any, **kwargs: Any) -> Any:
            if self._armed and not self._busy:
                device = data.device if reader else kwargs.get("device")
                if (device is not None and (reader or not isinstance(data, torch.Tensor))
                        and self._on_device(torch.device(device))):
                    self._trip(f"Tensor.{name}()" if reader else f"torch.{name}(<Python value>, device={device})")
            return original(data, *args, **kwargs)

        guarded.__name__ = name
        return guarded
