"""A callback for resume tests: SIGKILL the run after a given optimizer step, as a crash would.

Active only while the environment variable KILL_AT_STEP is set, so that the resumed run, which
repeats the run's overrides, does not kill itself again."""

from __future__ import annotations

import os
import signal
from typing import Any

from pytorch_lightning.callbacks import Callback


class KillAtStep(Callback):
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = os.environ.get("KILL_AT_STEP")
        if step is not None and trainer.global_step == int(step):
            os.kill(os.getpid(), signal.SIGKILL)
