"""Hydra callbacks (configured under `hydra.callbacks` in conf/hydra/default.yaml)."""

from __future__ import annotations

import sys
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class FinishWandbRun(Callback):
    """Finish the job's wandb run, marked failed if the job raised, so the next job starts its own."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        wandb = sys.modules.get("wandb")  # never import it just to find nothing to finish
        if wandb is not None and wandb.run is not None:
            wandb.finish(exit_code=0 if job_return.status == JobStatus.COMPLETED else 1)
