"""Lightning's EMA of the weights, with the averaged weights kept for testing a checkpoint."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EMAWeightAveraging as LightningEMA
from pytorch_lightning.trainer.states import TrainerFn


class EMAWeightAveraging(LightningEMA):
    """Lightning's EMAWeightAveraging, except that testing a checkpoint (which calls `on_load_checkpoint` too)
    keeps its averaged weights, those that selected it, instead of loading its trained ones."""

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn == TrainerFn.FITTING:  # a resume: both weights come back
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
