"""SyncGuard: fail a fit that reads a device value on the host during a training step.

A training step must never wait for the device (the house rule; on a GPU every such read is a
stream synchronize). The guard is armed from a batch's `on_train_batch_start` until the next
batch starts (or validation, the epoch end, the fit end), except for batches on which the loggers
write (`trainer.log_every_n_steps`, where logged values are read by design). While armed, any of
these on a tensor of the model's device raises `HostSyncError`:

- `.item()`, `.tolist()`, `.numpy()`, `.cpu()`, `bool()`, `float()`, `int()`, `index()`,
  `np.asarray(tensor)` (`__array__`);
- `torch.tensor(...)` / `torch.as_tensor(...)` of Python numbers with an explicit `device=` equal to
  the model's device (a host-to-device copy from pageable memory, which also synchronizes).

Host tensors of the data pipeline (torch.utils.data, torchvision transforms, resnet_exp.data) are
exempt: reading them is no sync. This works on CPU, so a CPU test can run it; on CUDA the guard
also sets `torch.cuda.set_sync_debug_mode("error")` while armed, which catches every sync the
CUDA runtime sees, whatever Python call caused it.
"""

from __future__ import annotations

import sys
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
    def __init__(self, cuda_debug_mode: str = "error") -> None:
        super().__init__()
        self.cuda_debug_mode = cuda_debug_mode
        self.violations: list[str] = []
        self.guarded_steps = 0
        self._device: torch.device | None = None
        self._step = -1
        self._armed = False
        self._busy = False  # inside a guarded call: nested calls are the same read
        self._originals: dict[str, Callable[..., Any]] = {}
        self._factories: dict[str, Callable[..., Any]] = {}

    # ------------------------------------------------------------------ hooks
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._device = pl_module.device
        self._install()

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._disarm()
        self._step = trainer.global_step
        if not logging_due(trainer, self._step):
            self.guarded_steps += 1
            self._arm()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        # Callbacks listed before the guard start the next step before it does: off already if that
        # step is a logging step (Lightning's LearningRateMonitor reads the rates then).
        if logging_due(trainer, trainer.global_step):
            self._disarm()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._disarm()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._disarm()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._disarm()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._uninstall()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._uninstall()

    # ------------------------------------------------------------------ arming
    def _cuda(self) -> bool:
        return self._device is not None and self._device.type == "cuda"

    def _arm(self) -> None:
        self._armed = True
        if self._cuda():
            torch.cuda.set_sync_debug_mode(self.cuda_debug_mode)

    def _disarm(self) -> None:
        if self._armed and self._cuda():
            torch.cuda.set_sync_debug_mode("default")
        self._armed = False

    def _install(self) -> None:
        if self._originals:
            return
        for name in READERS:
            original = getattr(torch.Tensor, name)
            self._originals[name] = original
            setattr(torch.Tensor, name, self._reader(name, original))
        for name in FACTORIES:
            original = getattr(torch, name)
            self._factories[name] = original
            setattr(torch, name, self._factory(name, original))

    def _uninstall(self) -> None:
        self._disarm()
        for name, original in self._originals.items():
            setattr(torch.Tensor, name, original)
        for name, original in self._factories.items():
            setattr(torch, name, original)
        self._originals, self._factories = {}, {}

    # ------------------------------------------------------------------ checks
    def _on_device(self, device: torch.device) -> bool:
        own = self._device
        return (own is not None and device.type == own.type
                and (device.index is None or own.index is None or device.index == own.index))

    def _fail(self, what: str) -> None:
        frame = sys._getframe(2)
        while frame is not None:  # only when a read happened: the walk costs nothing otherwise
            if any(p in frame.f_code.co_filename.replace("\\", "/") for p in EXEMPT_PATHS):
                return
            frame = frame.f_back
        caller = sys._getframe(2)
        where = f"{caller.f_code.co_filename}:{caller.f_lineno}"
        message = (f"{what} during training step {self._step} (not a logging step) at {where}: "
                   "a host read of a device value, i.e. a host-device sync per step")
        self.violations.append(message)
        raise HostSyncError(message)

    def _trip(self, what: str) -> None:
        """Report `what`; the guard is off meanwhile, since reporting itself may read tensors."""
        self._busy = True
        try:
            self._fail(what)
        finally:
            self._busy = False

    def _reader(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        guard = self

        def guarded(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if guard._armed and not guard._busy and guard._on_device(tensor.device):
                guard._trip(f"Tensor.{name}()")
            return original(tensor, *args, **kwargs)

        guarded.__name__ = name
        return guarded

    def _factory(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        guard = self

        def guarded(data: Any, *args: Any, **kwargs: Any) -> Any:
            device = kwargs.get("device")
            if (guard._armed and not guard._busy and device is not None and not isinstance(data, torch.Tensor)
                    and guard._on_device(torch.device(device))):
                guard._trip(f"torch.{name}(<Python value>, device={device})")
            return original(data, *args, **kwargs)

        guarded.__name__ = name
        return guarded
