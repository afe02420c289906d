"""A rich progress bar that does not synchronize the GPU on every training step.

Lightning's progress bars read `trainer.progress_bar_metrics` after every batch, which turns each
`self.log(..., prog_bar=True)` tensor into a Python number: one host-device sync per step on a GPU.
This bar reads the metrics only every `metrics_every_n_steps` training batches (by default, on CUDA,
as often as the loggers do: `trainer.log_every_n_steps`; elsewhere every batch) and shows the last
values in between. The bar itself still advances every batch.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar


class SyncFreeRichProgressBar(RichProgressBar):
    def __init__(self, metrics_every_n_steps: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if metrics_every_n_steps is not None and metrics_every_n_steps < 1:
            raise ValueError(f"metrics_every_n_steps={metrics_every_n_steps}: must be >= 1 (or null)")
        self.metrics_every_n_steps = metrics_every_n_steps
        self._shown: Optional[Dict[str, Any]] = None

    def _every(self, trainer: pl.Trainer) -> int:
        if self.metrics_every_n_steps is not None:
            return self.metrics_every_n_steps
        on_cuda = trainer.lightning_module is not None and trainer.lightning_module.device.type == "cuda"
        return max(int(trainer.log_every_n_steps or 1), 1) if on_cuda else 1

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Dict[str, Any]:
        every = self._every(trainer)
        if (trainer.training and every > 1 and self._shown is not None
                and trainer.fit_loop.epoch_loop.batch_idx % every):
            return self._shown
        self._shown = super().get_metrics(trainer, pl_module)
        return self._shown
