"""Hydra callbacks (`hydra.callbacks` in conf/hydra/default.yaml and conf/bench.yaml): check before anything
is made, cap a launched job's CPU threads, finish each job's wandb run, keep the sweep report and bench table up
to date, stop a sweep on SIGTERM."""

from __future__ import annotations

import copy
import logging
import os
import sys
from pathlib import Path
from typing import Any

import torch
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from resnet_exp.app.arguments import sweep_jobs
from resnet_exp.app.cli import describe_user_error, exit_on_user_error
from resnet_exp.app.resume import check_same_jobs, keep_sweep_record
from resnet_exp.app.run_dir import check_output_folder, sweep_folder
from resnet_exp.app.signals import TERMINATED_EXIT_CODE
from resnet_exp.app.sweep_job import JOB_STATUS_ATTRIBUTE
from resnet_exp.config import validate
from resnet_exp.errors import Terminated, first_line, shortened
from resnet_exp.io import is_rank_zero, write_json_atomic
from resnet_exp.report import JOB_STATUS_FILE, SUMMARY_MD
from resnet_exp.report.summary import sweep_summary
from resnet_exp.report.tables import Report, build_report, log_wandb_table

log = logging.getLogger(__name__)


def _is_multirun(config: DictConfig) -> bool:
    return OmegaConf.select(config, "hydra.mode", default=None) == RunMode.MULTIRUN


def _one_line(exc: Any) -> str:
    if not isinstance(exc, BaseException):
        return "" if exc is None else shortened(first_line(exc), 500)
    message = describe_user_error(exc)
    return shortened(message if message is not None else f"{type(exc).__name__}: {first_line(exc)}", 500)


class FinishWandbRun(Callback):
    """Finish the job's wandb run, marked failed if the job raised, so the next job starts its own."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if (wandb := sys.modules.get("wandb")) is not None and wandb.run is not None:  # never imported for this
            wandb.finish(exit_code=0 if job_return.status == JobStatus.COMPLETED else 1)


class StopSweepOnSigterm(Callback):
    """A job stopped by SIGTERM stops its multirun; listed first under `hydra.callbacks`, so that it runs last."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        error = getattr(job_return, "_return_value", None)
        error = Terminated.behind(error) if isinstance(error, BaseException) else None
        if job_return.status == JobStatus.FAILED and error is not None and _is_multirun(config):
            print(f"error: {error}; the sweep stops here", file=sys.stderr)
            raise SystemExit(TERMINATED_EXIT_CODE)


class CpuThreadsPerJob(Callback):
    """Caps each job's torch intra-op threads at `hydra.launcher.cpus_per_task`, which submitit's local launcher
    only records: three jobs with two threads each on two cores took 6-10x as long per step as at one thread each."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        cpus = OmegaConf.select(config, "hydra.launcher.cpus_per_task", default=None)
        if isinstance(cpus, int) and 0 < cpus < torch.get_num_threads():
            torch.set_num_threads(cpus)


class CheckBeforeStart(Callback):
    """Before Hydra makes any folder, check the output folder and the config's values (in a multirun: of every job,
    that a resumed sweep makes its own jobs, and each dataset once); a user error exits 2 with its one line."""

    def __init__(self, groups: list[str] | None = None) -> None:
        self.groups = tuple(groups) if groups else None  # None: the training config's groups

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, None, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        hc = config.hydra
        try:
            jobs = sweep_jobs(hc.sweeper, list(hc.overrides.task))
            if jobs and str(hc.sweeper.get("_target_", "")).endswith(".BasicSweeper"):
                params = [f"{k}={v}" for k, v in (hc.sweeper.get("params") or {}).items()]
                check_same_jobs(sweep_folder(hc), params, list(hc.overrides.task))
        except Exception as exc:
            exit_on_user_error(exc)
        self._check(config, [] if jobs is None else jobs, "hydra.sweep.dir")  # glob sweeps: left to Hydra
        keep_sweep_record(sweep_folder(hc))  # only a resumed sweep's folder holds multirun.yaml by now

    def _check(self, config: DictConfig, jobs: list[list[str]] | None, folder_key: str) -> None:
        """Check the output folder, then the run's config (`jobs` None) or each job's, composed."""
        hc = config.hydra
        try:
            folder = Path(str(OmegaConf.select(config, folder_key)))
            check_output_folder(folder, [*hc.overrides.hydra, *hc.overrides.task], folder_key)
            configs = ([copy.deepcopy(config)] if jobs is None else
                       (compose(config_name=hc.job.config_name, overrides=job, return_hydra_config=True)
                        for job in jobs))
            datasets = set()
            for job_cfg in configs:
                with open_dict(job_cfg):  # what Hydra fills in when the job really starts
                    job_cfg.hydra.runtime.output_dir = str(folder.absolute())
                    job_cfg.hydra.runtime.cwd = hc.runtime.cwd
                HydraConfig.instance().set_config(job_cfg)
                validate(job_cfg, **({"groups": self.groups} if self.groups else {}))
                if jobs is not None and "data" in (self.groups or ("data",)):
                    data = job_cfg.data
                    datasets.add((str(getattr(data.name, "value", data.name)), str(data.data_dir), bool(data.download)))
            from resnet_exp.data import sources

            for dataset in sorted(d for d in datasets if d[0] in sources.DOWNLOADS):  # once, not per job
                sources.ensure_available(*dataset)
        except Exception as exc:
            exit_on_user_error(exc)
        finally:
            HydraConfig.instance().set_config(config)


class SweepReport(Callback):
    """The sweep report of every multirun, rebuilt after each job (one that raised gets `job_status.json`), printed
    at the end and, when wandb logs online, logged as one run in the sweep's group; it never fails a sweep."""

    def __init__(self, plots: bool = True, after_each_job: bool = True, wandb_table: bool = True) -> None:
        self.plots, self.after_each_job, self.wandb_table = plots, after_each_job, wandb_table

    def _build(self, config: DictConfig) -> Report | None:
        try:
            return build_report(sweep_folder(config.hydra), plots=self.plots)
        except Exception as exc:  # the report must never break the sweep
            log.warning("sweep report not written: %s", _one_line(exc))
            return None

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if not (_is_multirun(config) and is_rank_zero()):
            return
        if job_return.status == JobStatus.FAILED:
            try:  # the run may have removed its folder (failed while setting up): keep a trace of the job
                error = getattr(job_return, "_return_value", None)
                # A job stopped by SIGTERM saved its state: a resumed sweep continues it rather than starting over.
                stopped = isinstance(error, BaseException) and Terminated.behind(error) is not None
                write_json_atomic(Path(str(config.hydra.runtime.output_dir)) / JOB_STATUS_FILE, {
                    "status": getattr(error, JOB_STATUS_ATTRIBUTE, "interrupted" if stopped else "failed"),
                    "error": _one_line(error),
                    "overrides": list(job_return.overrides or []),
                    "job_num": OmegaConf.select(config, "hydra.job.num", default=None)})
            except Exception as exc:
                log.warning("could not record the failed job: %s", _one_line(exc))
        if self.after_each_job:
            self._build(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        report = self._build(config) if _is_multirun(config) and is_rank_zero() else None
        if report is None:
            return
        counts = {status: report.count(status) for status in ("completed", "pruned", "failed", "interrupted")}
        summary = report.sweep_dir / SUMMARY_MD
        log.info("sweep report (%d jobs: %d completed, %d pruned, %d failed, %d interrupted): %s",
                 len(report.rows), *counts.values(), summary)
        try:
            print(sweep_summary(summary.read_text(), summary, counts), flush=True)
        except Exception as exc:
            log.warning("sweep summary not printed: %s", _one_line(exc))
        if self.wandb_table and _wandb_online(config):
            self._log_wandb_table(config, report)

    @staticmethod
    def _log_wandb_table(config: DictConfig, report: Report) -> None:
        try:
            # The sweep's name as the jobs' `sweep_name` resolver gives it (Hydra's job name, e.g. `run`); the group if
            # typed (the default gives each configuration of a seed= sweep its own); None where a resolver needs a job.
            job_name = OmegaConf.select(config, "hydra.job.name", default=None) or config.get("task_name", "train")
            sweep = f"{job_name}-{report.sweep_dir.name}"
            node = OmegaConf.select(config, "logger.wandb", default=None)
            group = OmegaConf.to_container(node, resolve=False).get("group") if isinstance(node, DictConfig) else None
            typed = group if isinstance(group, str) and group and "${" not in group else None
            project, entity = (OmegaConf.select(config, f"logger.wandb.{key}", default=None,
                                                throw_on_resolution_failure=False) for key in ("project", "entity"))
            url = log_wandb_table(report, project or "resnet_exp", entity, typed or sweep, tags=[f"sweep={sweep}"])
            log.info("sweep summary logged to wandb: %s", url)
        except Exception as exc:
            log.warning("sweep summary not logged to wandb: %s", _one_line(exc))


def _wandb_online(config: DictConfig) -> bool:
    mode, env = OmegaConf.select(config, "logger.wandb.mode", default=None), os.environ.get("WANDB_MODE")
    if mode != "auto" or env in ("online", "offline", "disabled", "dryrun"):
        return mode == "online" or env == "online"
    from resnet_exp.loggers import wandb_credentials_configured

    return wandb_credentials_configured()


class SweepTable(Callback):
    """After a bench multirun: every job's rows in one bench.csv / bench.md in the sweep folder, printed."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from resnet_exp.bench.table import BENCH_CSV, write_sweep_tables

        if (table := write_sweep_tables(sweep_dir := sweep_folder(config.hydra))) is not None:
            print(f"\n{table}\n\nall jobs: {sweep_dir / BENCH_CSV}", flush=True)
