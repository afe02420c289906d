"""Callbacks for resume tests: signal the run after a given optimizer step, as a crash (SIGKILL,
the default) or a batch scheduler's stop (KILL_SIGNAL=SIGTERM) would, or fail it.

Active only while the environment variable KILL_AT_STEP (FAIL_AT_STEP) is set, so that the resumed
run, which repeats the run's overrides, does not kill itself again."""

from __future__ import annotations

import os
import signal
from typing import Any

from pytorch_lightning.callbacks import Callback


class KillAtStep(Callback):
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = os.environ.get("KILL_AT_STEP")
        if step is not None and trainer.global_step == int(step):
            os.kill(os.getpid(), signal.Signals[os.environ.get("KILL_SIGNAL", "SIGKILL")])


class KillWhileSettingUp(Callback):
    """Signals the run while it is being built (callbacks are made before anything is trained),
    when KILL_SIGNAL is set."""

    def __init__(self) -> None:
        if "KILL_SIGNAL" in os.environ:
            os.kill(os.getpid(), signal.Signals[os.environ["KILL_SIGNAL"]])


class FailAtStep(Callback):
    """Raises after optimizer step FAIL_AT_STEP (while that variable is set), as a bug or a lost
    device would: the job fails with its checkpoints written so far."""

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = os.environ.get("FAIL_AT_STEP")
        if step is not None and trainer.global_step == int(step):
            raise RuntimeError(f"failed at step {step} on purpose")
