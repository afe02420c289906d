"""The run's loggers: a CSV history that survives resumes and kills, and wandb (its mode set by the machine's
credentials and network)."""

from __future__ import annotations

import csv
import logging
import netrc
import os
import socket
from argparse import Namespace
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import wandb
from pytorch_lightning.core.saving import save_hparams_to_yaml
from pytorch_lightning.loggers import Logger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from resnet_exp.callbacks.lightning_shims import drop_wandb_anonymous
from resnet_exp.errors import ConfigError, first_line
from resnet_exp.io import write_atomic
from resnet_exp.report.summary import shown_path

log = logging.getLogger(__name__)

WANDB_MODES = ("auto", "online", "offline", "disabled")
# The modes wandb itself accepts in WANDB_MODE (exactly, lower case, no spaces).
WANDB_ENV_MODES = ("online", "offline", "disabled", "dryrun", "run", "shared")
# Run-table summaries, so dashboards show the best epoch rather than the last one.
WANDB_SUMMARIES = {"val/acc": "max", "val/acc_best": "max", "val/loss": "min", "train/loss_epoch": "min"}


class CSVLogger(Logger):
    """`metrics.csv` and `hparams.yaml` in `save_dir/name/version`, as Lightning's CSVLogger writes them, except
    that the history survives resumes and kills: rows in the file are kept (a line cut short is dropped),
    rewrites are atomic, and at the end rows a resumed run logged again are dropped (`drop_redone_rows`)."""

    METRICS_FILE = "metrics.csv"
    HPARAMS_FILE = "hparams.yaml"

    def __init__(self, save_dir: str | os.PathLike, name: str = "csv", version: str = "",
                 flush_logs_every_n_steps: int = 100) -> None:
        super().__init__()
        self.root = Path(save_dir)
        self.experiment_name = name or ""
        self.experiment_version = version
        self.flush_logs_every_n_steps = flush_logs_every_n_steps
        self.hparams: dict[str, Any] = {}
        self.pending: list[dict[str, Any]] = []  # logged rows not yet in the file
        self.columns: list[str] = []  # sorted, as Lightning writes them
        self.started = False

    @property
    def name(self) -> str:
        return self.experiment_name

    @property
    def version(self) -> str:
        return self.experiment_version

    @property
    def log_dir(self) -> str:
        return os.path.join(self.root, self.name, self.version)

    @property
    def save_dir(self) -> str:
        # Lightning's `trainer.log_dir` (where a profiler writes its report).
        return self.log_dir

    @property
    def metrics_path(self) -> Path:
        return Path(self.log_dir) / self.METRICS_FILE

    def _start(self) -> None:
        """Before the first write: the folder exists and the file ends with a whole row."""
        if self.started:
            return
        self.started = True
        Path(self.log_dir).mkdir(parents=True, exist_ok=True)
        if self.metrics_path.is_file():
            text = self.metrics_path.read_text()
            if text and not text.endswith("\n"):
                write_atomic(self.metrics_path, lambda handle: handle.write(text[: text.rfind("\n") + 1]))

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace | None = None, *args: Any, **kwargs: Any) -> None:
        self._start()
        self.hparams.update(vars(params) if isinstance(params, Namespace) else dict(params or {}))
        save_hparams_to_yaml(os.path.join(self.log_dir, self.HPARAMS_FILE), self.hparams)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        self._start()
        if step is None:
            step = len(self.pending)
        row = {k: v.item() if isinstance(v, torch.Tensor) else v for k, v in metrics.items()}
        row["step"] = step
        self.pending.append(row)
        if (step + 1) % self.flush_logs_every_n_steps == 0:
            self.save()

    @rank_zero_only
    def save(self) -> None:
        """Append the pending rows; when they bring a new column, rewrite the whole file with it."""
        self._start()
        if not self.pending:
            return
        path, header = self.metrics_path, None
        if path.is_file():
            with path.open(newline="") as handle:
                header = next(csv.reader(handle), [])
        self.columns = sorted(set(self.columns) | set(header or ()) | set().union(*self.pending))
        if header == self.columns:
            with path.open("a", newline="") as handle:
                csv.DictWriter(handle, fieldnames=self.columns).writerows(self.pending)
        else:
            _write_rows(path, (_read_rows(path)[1] if header is not None else []) + self.pending, self.columns)
        self.pending = []

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self.started:
            self.save()
            drop_redone_rows(self.metrics_path)


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _write_rows(path: Path, rows: list[dict[str, Any]], fieldnames: list[str]) -> None:
    def write(handle: Any) -> None:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)

    write_atomic(path, write)


def drop_redone_rows(path: Path) -> None:
    """Keep the last of rows logged twice (same epoch, step and columns), as a resumed run logs again."""
    if not path.is_file():
        return
    fieldnames, rows = _read_rows(path)
    last = {}
    for index, row in enumerate(rows):
        filled = tuple(k for k, v in row.items() if v not in ("", None))
        last[(row.get("epoch"), row.get("step"), filled)] = index
    keep = sorted(last.values())
    if len(keep) < len(rows):
        _write_rows(path, [rows[i] for i in keep], fieldnames)


def wandb_credentials_configured() -> bool:
    """True if wandb could log in without asking: an API key in the environment or ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(_wandb_url()).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_mode(mode: str) -> str:
    """The config's mode; for `auto`, `WANDB_MODE`, else online with credentials configured, else offline."""
    if mode not in WANDB_MODES:
        raise ConfigError(f"logger.wandb.mode={mode}: choose one of {', '.join(WANDB_MODES)}")
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    env = {"dryrun": "offline"}.get(env, env)  # wandb's old name for offline
    if env in ("online", "offline", "disabled"):
        return env
    return "online" if wandb_credentials_configured() else "offline"


def check_wandb_environment(environ: MutableMapping[str, str] = os.environ) -> None:
    """Check the WANDB_* variables, which wandb reads even with an explicit mode: WANDB_MODE normalised (an
    empty one dropped), a value wandb would refuse with a traceback a one-line ConfigError instead."""
    mode = environ.get("WANDB_MODE")
    clean = (mode or "").strip().lower()
    if clean in WANDB_ENV_MODES:
        environ["WANDB_MODE"] = clean
    elif mode is not None and not clean:
        del environ["WANDB_MODE"]
    elif mode is not None:
        raise ConfigError(f"WANDB_MODE={mode}: not a wandb mode; set online, offline or disabled "
                          "(any case), or unset it")
    for name, value in sorted((k, v) for k, v in environ.items() if k.startswith("WANDB_")):
        try:
            wandb.Settings().update_from_env_vars({name: value})
        except ValueError as exc:  # pydantic's ValidationError
            errors = exc.errors() if hasattr(exc, "errors") else []
            reason = errors[0].get("msg", "") if errors else first_line(exc)
            raise ConfigError(f"{name}={value}: wandb refuses this value ({reason}); fix or unset it") from None


def wandb_reachable(timeout_s: float = 3.0) -> bool:
    """Whether wandb's server accepts a TCP connection within `timeout_s` (wandb.init would retry for minutes)."""
    url = urlparse(_wandb_url())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wandb_logger(mode: str = "auto", save_dir: str = ".", **kwargs) -> WandbLogger | None:
    """A WandbLogger writing under `save_dir` (None when `disabled`); an unreachable online one logs offline.
    The mode goes to `wandb.init`: WandbLogger's `offline` flag would set WANDB_MODE for the next jobs too."""
    mode = wandb_mode(mode)
    log_model = kwargs.get("log_model", False)
    if log_model not in (False, True, "all"):
        raise ConfigError(f"logger.wandb.log_model={log_model}: must be false, true (checkpoints when "
                          "training ends) or all (each checkpoint as it is saved)")
    if mode == "disabled":
        return None
    if mode == "online" and not wandb_reachable():
        log.warning("wandb: cannot reach %s; logging offline in %s/wandb instead (upload later with wandb sync)",
                    _wandb_url(), save_dir)
        mode = "offline"
    os.makedirs(save_dir, exist_ok=True)
    if kwargs.get("tags") is not None:  # a null tag (sweep= outside a multirun) is no tag
        kwargs["tags"] = [str(tag) for tag in kwargs["tags"] if tag is not None]
    if mode == "offline":
        # Offline, wandb's console output is only noise; `start_wandb_runs` says what matters.
        kwargs.setdefault("settings", wandb.Settings(silent=True))
    return drop_wandb_anonymous(WandbLogger(save_dir=save_dir, mode=mode, **kwargs))


def _wandb_url() -> str:
    return os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")


def start_wandb_runs(loggers: list[Logger], announce: bool) -> list[Path]:
    """Start the wandb runs with their run-table summaries; with `announce`, say in one line each that wandb
    logs offline, where, and how to upload later, and return every offline folder (`offline-run-<time>-<id>`)
    of the run, oldest first (each resumed segment adds one), so that one `wandb sync` uploads its history."""
    folders = []
    for logger in loggers:
        if not isinstance(logger, WandbLogger):
            continue
        for metric, summary in WANDB_SUMMARIES.items():
            logger.experiment.define_metric(metric, summary=summary)
        if announce and logger.experiment.offline:
            run_dir = Path(logger.experiment.dir).parent
            segments = sorted(run_dir.parent.glob(f"offline-run-*-{run_dir.name.rsplit('-', 1)[-1]}"))
            segments = segments if run_dir in segments else [*segments, run_dir]
            log.info("wandb is offline: this run logs into %s (upload it later with: wandb sync %s)",
                     shown_path(segments[-1]), " ".join(shown_path(p) for p in segments))
            folders.extend(segments)
    return folders
