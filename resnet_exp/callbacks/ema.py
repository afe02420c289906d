"""Lightning's EMA of the weights, with the averaged weights kept for testing a checkpoint."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EMAWeightAveraging as LightningEMA
from pytorch_lightning.trainer.states import TrainerFn


class EMAWeightAveraging(LightningEMA):
    """`pytorch_lightning.callbacks.EMAWeightAveraging` (validation swaps the averaged weights in; a
    checkpoint's `state_dict` holds them and `current_model_state` the trained ones), except that
    testing a checkpoint keeps its averaged weights: Lightning calls a callback's
    `on_load_checkpoint` when testing too, and after a fit in the same process this callback still
    holds its average and would load the checkpoint's trained weights into the module, so the test
    would score other weights than those that selected the checkpoint."""

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn == TrainerFn.FITTING:  # a resume: both weights come back
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
