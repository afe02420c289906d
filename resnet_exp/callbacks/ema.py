"""Lightning's EMA of the weights, with the averaged weights kept for testing a checkpoint."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EMAWeightAveraging as LightningEMA
from pytorch_lightning.trainer.states import TrainerFn


class EMAWeightAveraging(LightningEMA):
    """Lightning's EMAWeightAveraging, except that testing a checkpoint keeps the averaged weights that chose it."""

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn == TrainerFn.FITTING:  # a resume (test calls this too): both weights come back
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
