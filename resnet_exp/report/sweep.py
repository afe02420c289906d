"""Hydra callback: the sweep report (`resnet_exp.report`) of every multirun, kept up to date.

Configured under `hydra.callbacks` (conf/hydra/default.yaml):

    sweep_report:
      _target_: resnet_exp.report.sweep.SweepReport

- after each job of a multirun: a job that raised gets `job_status.json` (status `failed`, the
  error in one line) in its folder, then summary.csv / summary.md / plots are rebuilt, so a sweep
  that stops half-way (Hydra stops at a failed job; Ctrl-C) still leaves a current report;
- at the end of the multirun: the report once more, its path in the log and, when wandb can log
  online, the table and plots as one extra run (job type `sweep_report`) in the sweep's group.

Never fails a sweep: a problem with the report is logged as a warning. Skips every rank but the
first of a multi-process job.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from resnet_exp.errors import first_line
from resnet_exp.report import JOB_STATUS_FILE, SUMMARY_MD
from resnet_exp.report.rows import COLUMNS
from resnet_exp.report.summary import sweep_summary
from resnet_exp.report.tables import Report, build_report, public_rows
from resnet_exp.results import write_json_atomic

log = logging.getLogger(__name__)


def _rank_zero() -> bool:
    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def _one_line(exc: Any) -> str:
    if exc is None:
        return ""
    from resnet_exp.app.cli import describe_user_error

    message = describe_user_error(exc) if isinstance(exc, BaseException) else None
    if message is None:
        first = first_line(exc)
        message = f"{type(exc).__name__}: {first}" if isinstance(exc, BaseException) else first
    return message[:500]


def _sweep_dir(config: DictConfig) -> Path:
    sweep = Path(str(config.hydra.sweep.dir))
    if not sweep.is_absolute():  # relative to where the command was started (no chdir in jobs)
        cwd = OmegaConf.select(config, "hydra.runtime.cwd", default=None)
        sweep = Path(cwd or os.getcwd()) / sweep
    return sweep


def _is_multirun(config: DictConfig) -> bool:
    return OmegaConf.select(config, "hydra.mode", default=None) == RunMode.MULTIRUN


class SweepReport(Callback):
    """summary.csv, summary.md and plots in the sweep folder (see `resnet_exp.report`)."""

    def __init__(self, plots: bool = True, after_each_job: bool = True, wandb_table: bool = True) -> None:
        self.plots = plots
        self.after_each_job = after_each_job
        self.wandb_table = wandb_table

    @staticmethod
    def _applies(config: DictConfig) -> bool:
        return _is_multirun(config) and _rank_zero()

    def _build(self, config: DictConfig) -> Report | None:
        try:
            return build_report(_sweep_dir(config), plots=self.plots)
        except Exception as exc:  # the report must never break the sweep
            log.warning("sweep report not written: %s", _one_line(exc))
            return None

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if not self._applies(config):
            return
        if job_return.status == JobStatus.FAILED:
            self._record_failure(config, job_return)
        if self.after_each_job:
            self._build(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not (_is_multirun(config) and _rank_zero()):
            return
        report = self._build(config)
        if report is None:
            return
        log.info("sweep report (%d jobs: %d completed, %d failed, %d interrupted): %s",
                 len(report.rows), report.count("completed"), report.count("failed"),
                 report.count("interrupted"), report.sweep_dir / SUMMARY_MD)
        try:
            counts = {status: report.count(status) for status in ("completed", "failed", "interrupted")}
            table = (report.sweep_dir / SUMMARY_MD).read_text()
            print(sweep_summary(table, report.sweep_dir / SUMMARY_MD, counts), flush=True)
        except Exception as exc:
            log.warning("sweep summary not printed: %s", _one_line(exc))
        if self.wandb_table:
            log_wandb_table(config, report)

    @staticmethod
    def _record_failure(config: DictConfig, job_return: JobReturn) -> None:
        try:
            run_dir = Path(str(config.hydra.runtime.output_dir))
            # The run may have removed its folder (failed while setting up): keep a trace of the job.
            write_json_atomic(run_dir / JOB_STATUS_FILE, {
                "status": "failed",
                "error": _one_line(getattr(job_return, "_return_value", None)),
                "overrides": list(job_return.overrides or []),
                "job_num": OmegaConf.select(config, "hydra.job.num", default=None),
            })
        except Exception as exc:
            log.warning("could not record the failed job: %s", _one_line(exc))


def _wandb_online(config: DictConfig) -> bool:
    mode = OmegaConf.select(config, "logger.wandb.mode", default=None)
    if mode == "online" or os.environ.get("WANDB_MODE") == "online":
        return True
    if mode != "auto" or os.environ.get("WANDB_MODE") in ("offline", "disabled", "dryrun"):
        return False
    from resnet_exp.callbacks.loggers import wandb_credentials_configured

    return wandb_credentials_configured()


def log_wandb_table(config: DictConfig, report: Report) -> None:
    """One extra wandb run in the sweep's group holding the summary table and plots (online only)."""
    try:
        if not _wandb_online(config):
            return
        import wandb

        def setting(key: str) -> Any:
            try:
                return OmegaConf.select(config, f"logger.wandb.{key}", default=None)
            except Exception:  # e.g. a resolver that needs a job's HydraConfig
                return None

        group = setting("group") or f"{config.get('task_name', 'train')}-{report.sweep_dir.name}"
        run = wandb.init(project=setting("project") or "resnet_exp", entity=setting("entity"),
                         group=group, job_type="sweep_report", name=f"{group}-summary",
                         dir=str(report.sweep_dir), mode="online", reinit="finish_previous")
        try:
            table = wandb.Table(columns=list(COLUMNS),
                                data=[[row[c] for c in COLUMNS] for row in public_rows(report)])
            images = {p.stem: wandb.Image(str(p)) for p in report.files if p.suffix == ".png"}
            run.log({"sweep_summary": table, **images})
        finally:
            run.finish()
        log.info("sweep summary logged to wandb: %s", run.url)
    except Exception as exc:
        log.warning("sweep summary not logged to wandb: %s", _one_line(exc))
