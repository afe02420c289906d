"""Logger factories whose behaviour depends on the machine (wandb credentials)."""

from __future__ import annotations

import csv
import logging
import netrc
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import wandb
from pytorch_lightning import loggers as pl_loggers
from pytorch_lightning.loggers import Logger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.utilities import rank_zero_only

from resnet_exp.errors import ConfigError
from resnet_exp.io import write_atomic

log = logging.getLogger(__name__)

WANDB_MODES = ("auto", "online", "offline", "disabled")
WANDB_CONNECT_TIMEOUT_S = 3.0


class _HistoryWriter(ExperimentWriter):
    """Lightning's CSV writer, except that it continues an existing metrics.csv.

    Lightning's writer deletes metrics.csv when it starts in a non-empty folder (every resume) and
    rewrites the file in place when a new column appears (a kill then loses it). This one keeps
    the rows, drops only a line cut short by a killed process, rewrites atomically, and takes the
    columns already in the file (a resumed run's, or those of ddp_spawn's fit processes).
    """

    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            text = Path(self.metrics_file_path).read_text()
            if text and not text.endswith("\n"):
                _write_rows(Path(self.metrics_file_path), text[: text.rfind("\n") + 1])

    def save(self) -> None:
        if self.metrics and os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as handle:
                header = next(csv.reader(handle), [])
            self.metrics_keys = sorted(set(self.metrics_keys) | set(header))
        super().save()

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        with open(self.metrics_file_path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        _write_rows(Path(self.metrics_file_path), rows, fieldnames)


def _write_rows(path: Path, rows: str | list[dict[str, str]], fieldnames: list[str] | None = None) -> None:
    def write(handle: Any) -> None:
        if isinstance(rows, str):
            handle.write(rows)
            return
        writer = csv.DictWriter(handle, fieldnames=fieldnames or [])
        writer.writeheader()
        writer.writerows(rows)

    write_atomic(path, write)


def drop_redone_rows(path: Path) -> None:
    """Keep the last of rows logged twice (same epoch, step and columns): an epoch a killed
    process had started is logged again by the run that resumed it."""
    if not path.is_file():
        return
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fieldnames, rows = list(reader.fieldnames or []), list(reader)
    last = {}
    for index, row in enumerate(rows):
        filled = tuple(k for k, v in row.items() if v not in ("", None))
        last[(row.get("epoch"), row.get("step"), filled)] = index
    keep = sorted(last.values())
    if len(keep) < len(rows):
        _write_rows(path, [rows[i] for i in keep], fieldnames)


class CSVLogger(pl_loggers.CSVLogger):
    """Lightning's CSVLogger writing through `_HistoryWriter`: metrics.csv survives resumes and kills."""

    @property
    @rank_zero_experiment
    def experiment(self) -> _HistoryWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _HistoryWriter(log_dir=self.log_dir)
        return self._experiment

    @rank_zero_only
    def finalize(self, status: str) -> None:
        super().finalize(status)
        if self._experiment is not None:
            drop_redone_rows(Path(self._experiment.metrics_file_path))


def wandb_credentials_configured() -> bool:
    """True if wandb could log in without asking: an API key in the environment or ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_mode(mode: str) -> str:
    """The mode to run wandb in: the config's, unless it is `auto`; then `WANDB_MODE` from the
    environment, else online when credentials are configured, else offline."""
    if mode not in WANDB_MODES:
        raise ConfigError(f"logger.wandb.mode={mode}: choose one of {', '.join(WANDB_MODES)}")
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env in ("online", "offline", "disabled"):
        return env
    if env == "dryrun":  # wandb's old name for offline
        return "offline"
    return "online" if wandb_credentials_configured() else "offline"


def wandb_reachable(timeout_s: float = WANDB_CONNECT_TIMEOUT_S) -> bool:
    """Whether wandb's server accepts a TCP connection within `timeout_s` (a few seconds at
    most, where wandb.init itself would retry for minutes)."""
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wandb_logger(mode: str = "auto", save_dir: str = ".", **kwargs) -> WandbLogger | None:
    """A WandbLogger writing under `save_dir`, or None when the mode is `disabled`.

    The mode goes to `wandb.init` rather than WandbLogger's `offline` flag, which would set
    WANDB_MODE for the whole process and leak into the next job of a multirun. An online run
    whose server cannot be reached logs offline instead (one warning), so training goes on.
    """
    mode = wandb_mode(mode)
    if mode == "disabled":
        return None
    if mode == "online" and not wandb_reachable():
        log.warning("wandb: cannot reach %s; logging offline in %s/wandb instead (upload later "
                    "with wandb sync)", os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"), save_dir)
        mode = "offline"
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
