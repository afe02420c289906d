"""Stopping a fit on SIGTERM (a batch scheduler's time limit, `kill`) so that it can be continued: Lightning's
loops raise `SIGTERMException` (a `SystemExit` without a code: exit 0) after the running batch;
`CheckpointOnSigterm` saves the resume checkpoint then, and `stop_on_sigterm` turns the stop into `Terminated`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException

from resnet_exp.errors import Terminated

log = logging.getLogger(__name__)


class CheckpointOnSigterm(Callback):
    """Save the fit's state to `path` (`checkpoints/last.ckpt`) when a SIGTERM stops it, or at the end of training
    when it came after Lightning's last check."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _save(self, trainer: pl.Trainer) -> None:
        trainer.save_checkpoint(self.path)
        log.info("SIGTERM: saved the state at step %d to %s", trainer.global_step, self.path)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) and trainer.state.fn == TrainerFn.FITTING:
            self._save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.received_sigterm:
            self._save(trainer)


@contextmanager
def stop_on_sigterm(trainer: pl.Trainer, phase: str) -> Iterator[None]:
    """Raise `Terminated` when a SIGTERM stopped the trainer's fit or test inside the block, or arrived too late
    in it for Lightning to stop (the flag is reset when the next fit or test starts)."""
    try:
        yield
    except SIGTERMException:
        raise Terminated(_where(trainer, phase)) from None
    if trainer.received_sigterm:
        raise Terminated(_where(trainer, phase))


def _where(trainer: pl.Trainer, phase: str) -> str:
    if phase == "training":
        return (f"stopped by SIGTERM at training step {trainer.global_step} (epoch {trainer.current_epoch + 1}); "
                "its state is saved in checkpoints/last.ckpt")
    return f"stopped by SIGTERM while {phase}"
