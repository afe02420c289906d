"""Logger factories whose behaviour depends on the machine (wandb credentials)."""

from __future__ import annotations

import csv
import logging
import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import wandb
from pytorch_lightning import loggers as pl_loggers
from pytorch_lightning.loggers import Logger, WandbLogger

from resnet_exp.errors import ConfigError

log = logging.getLogger(__name__)

WANDB_MODES = ("auto", "online", "offline", "disabled")


class CSVLogger(pl_loggers.CSVLogger):
    """Lightning's CSVLogger, except that a new process continues an existing metrics.csv.

    Lightning's writer starts with no known columns and, on its first save, rewrites the file
    with only its own; rows with other columns (a resumed run's earlier epochs, the fit epochs
    seen by ddp_spawn's separate test process) then make it fail.
    """

    @property
    def experiment(self) -> Any:
        writer = super().experiment
        path = getattr(writer, "metrics_file_path", None)  # not a path on ranks other than 0
        # Once per process: a logger pickled into a spawned process arrives with a writer.
        if getattr(self, "_columns_read_in", None) != os.getpid() and isinstance(path, str):
            self._columns_read_in = os.getpid()
            if os.path.isfile(path):
                with open(path, newline="") as handle:
                    header = next(csv.reader(handle), [])
                writer.metrics_keys = sorted(set(writer.metrics_keys) | set(header))
        return writer


def wandb_credentials_configured() -> bool:
    """True if wandb could log in without asking: an API key in the environment or ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_logger(mode: str = "auto", save_dir: str = ".", **kwargs) -> WandbLogger | None:
    """A WandbLogger writing under `save_dir`, or None when `mode` is `disabled`.

    The mode goes to `wandb.init` rather than WandbLogger's `offline` flag, which would set
    WANDB_MODE for the whole process and leak into the next job of a multirun.
    """
    if mode not in WANDB_MODES:
        raise ConfigError(f"logger.wandb.mode={mode}: choose one of {', '.join(WANDB_MODES)}")
    if mode == "disabled":
        return None
    if mode == "auto":
        mode = "online" if wandb_credentials_configured() else "offline"
    os.makedirs(save_dir, exist_ok=True)
    if mode == "offline":
        # Offline, wandb's console output is only noise; `report_offline_runs` says what matters.
        kwargs.setdefault("settings", wandb.Settings(silent=True))
    return WandbLogger(save_dir=save_dir, mode=mode, **kwargs)


# Run-table summaries, so dashboards show the best epoch rather than the last one.
WANDB_SUMMARIES = {"val/acc": "max", "val/acc_best": "max", "val/loss": "min", "train/loss_epoch": "min"}


def define_wandb_summaries(loggers: list[Logger]) -> None:
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            for metric, summary in WANDB_SUMMARIES.items():
                logger.experiment.define_metric(metric, summary=summary)


def report_offline_runs(loggers: list[Logger]) -> list[Path]:
    """Say once where each offline wandb run is and how to upload it; return those folders."""
    offline = []
    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger.experiment.offline:
            run_dir = Path(logger.experiment.dir).parent
            log.info("wandb run saved offline in %s; upload it with: wandb sync %s", run_dir, run_dir)
            offline.append(run_dir)
    return offline
