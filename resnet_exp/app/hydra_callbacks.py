"""Hydra callbacks, all of them (configured under `hydra.callbacks` in conf/hydra/default.yaml and
conf/bench.yaml): finish each job's wandb run, check the config and the output folder before anything is made, keep the sweep
report and the bench table up to date, stop a sweep on SIGTERM."""

from __future__ import annotations

import copy
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from resnet_exp.app.sweep_job import JOB_STATUS_ATTRIBUTE
from resnet_exp.errors import Terminated, first_line, shortened
from resnet_exp.io import is_rank_zero, write_json_atomic
from resnet_exp.report import JOB_STATUS_FILE, SUMMARY_MD
from resnet_exp.report.summary import sweep_summary
from resnet_exp.report.tables import Report, build_report, log_wandb_table

log = logging.getLogger(__name__)


class FinishWandbRun(Callback):
    """Finish the job's wandb run, marked failed if the job raised, so the next job starts its own."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        wandb = sys.modules.get("wandb")  # never import it just to find nothing to finish
        if wandb is not None and wandb.run is not None:
            wandb.finish(exit_code=0 if job_return.status == JobStatus.COMPLETED else 1)


class StopSweepOnSigterm(Callback):
    """A job stopped by SIGTERM stops its multirun: Hydra would go on with the next job. Listed
    first under `hydra.callbacks`, so that its `on_job_end` runs after the others' (Hydra calls them
    in reverse): the job's wandb run is finished and the sweep report is up to date by then."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        error = getattr(job_return, "_return_value", None)
        error = Terminated.behind(error) if isinstance(error, BaseException) else None
        if job_return.status == JobStatus.FAILED and error is not None and _is_multirun(config):
            from resnet_exp.app.signals import TERMINATED_EXIT_CODE

            print(f"error: {error}; the sweep stops here", file=sys.stderr)
            raise SystemExit(TERMINATED_EXIT_CODE)


class CheckBeforeStart(Callback):
    """Check the config and the output folder before Hydra makes any folder.

    A single run: the config's range checks and the run folder (creatable and writable). A multirun:
    the same for every job and the sweep folder, so a bad value in the last job of a long sweep
    fails before the first job starts, and a resumed sweep must make the jobs it made before; for a
    search, every choice and both ends of every range (`sweep_jobs`). In a multirun, also that each
    dataset the jobs use can be found (or downloaded) once, so a missing dataset is one error, not
    one per job. (Hydra itself catches unknown keys, options and types when it composes; glob sweeps
    are left to it.) Hydra turns an exception raised in a callback into a warning, so a user error
    here prints its one line (after its traceback with RESNET_EXP_DEBUG=1) and exits.
    """

    def __init__(self, groups: list[str] | None = None) -> None:
        self.groups = tuple(groups) if groups else None  # None: the training config's groups

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, None, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from resnet_exp.app.arguments import sweep_jobs
        from resnet_exp.app.resume import check_same_jobs, keep_sweep_record

        hc = config.hydra
        try:
            jobs = sweep_jobs(hc.sweeper, list(hc.overrides.task))
            if jobs and str(hc.sweeper.get("_target_", "")).endswith(".BasicSweeper"):
                params = [f"{k}={v}" for k, v in (hc.sweeper.get("params") or {}).items()]
                check_same_jobs(_sweep_dir(config), params, list(hc.overrides.task))
        except Exception as exc:
            _exit_on_user_error(exc)
        self._check(config, [] if jobs is None else jobs, "hydra.sweep.dir")  # glob sweeps: left to Hydra
        keep_sweep_record(_sweep_dir(config))  # only a resumed sweep's folder holds multirun.yaml by now

    def _check(self, config: DictConfig, jobs: list[list[str]] | None, folder_key: str) -> None:
        """Check the output folder, then each job's config: the run's own (`jobs` None) or each
        job of a sweep composed from its overrides."""
        from hydra import compose
        from hydra.core.hydra_config import HydraConfig

        from resnet_exp.app.run_dir import check_output_folder
        from resnet_exp.config import validate

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

            for name, data_dir, download in sorted(datasets):  # found or downloaded once, not per job
                if name in sources.DOWNLOADS:
                    sources.ensure_available(name, data_dir, download)
        except Exception as exc:
            _exit_on_user_error(exc)
        finally:
            HydraConfig.instance().set_config(config)


def _exit_on_user_error(exc: Exception) -> NoReturn:
    """Print a user error's one line and exit 2 (Hydra would turn a callback's exception into a
    warning); re-raise anything else."""
    from resnet_exp.app.cli import USER_ERROR_EXIT_CODE, debugging, describe_user_error

    message = describe_user_error(exc)
    if message is None:
        raise exc
    if debugging():
        traceback.print_exception(exc)
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(USER_ERROR_EXIT_CODE) from None


def _one_line(exc: Any) -> str:
    if exc is None:
        return ""
    from resnet_exp.app.cli import describe_user_error

    message = describe_user_error(exc) if isinstance(exc, BaseException) else None
    if message is None:
        first = first_line(exc)
        message = f"{type(exc).__name__}: {first}" if isinstance(exc, BaseException) else first
    return shortened(message, 500)


def _sweep_dir(config: DictConfig) -> Path:
    sweep = Path(str(config.hydra.sweep.dir))
    if not sweep.is_absolute():  # relative to where the command was started (no chdir in jobs)
        cwd = OmegaConf.select(config, "hydra.runtime.cwd", default=None)
        sweep = Path(cwd or os.getcwd()) / sweep
    return sweep


def _is_multirun(config: DictConfig) -> bool:
    return OmegaConf.select(config, "hydra.mode", default=None) == RunMode.MULTIRUN


class SweepReport(Callback):
    """The sweep report (`resnet_exp.report`) of every multirun, kept up to date.

    - after each job: a job that raised gets `job_status.json` (status `failed`, the error in one
      line) in its folder, then summary.csv / summary.md / plots are rebuilt, so a sweep that stops
      half-way (Hydra stops at a failed job; Ctrl-C) still leaves a current report;
    - at the end: the report once more, printed, and, when wandb can log online, the table and
      plots as one extra run (job type `sweep_report`) in the sweep's group.

    Never fails a sweep: a problem with the report is logged as a warning. Skips every rank but the
    first of a multi-process job.
    """

    def __init__(self, plots: bool = True, after_each_job: bool = True, wandb_table: bool = True) -> None:
        self.plots = plots
        self.after_each_job = after_each_job
        self.wandb_table = wandb_table

    @staticmethod
    def _applies(config: DictConfig) -> bool:
        return _is_multirun(config) and is_rank_zero()

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
        if not self._applies(config):
            return
        report = self._build(config)
        if report is None:
            return
        log.info("sweep report (%d jobs: %d completed, %d pruned, %d failed, %d interrupted): %s",
                 len(report.rows), report.count("completed"), report.count("pruned"), report.count("failed"),
                 report.count("interrupted"), report.sweep_dir / SUMMARY_MD)
        try:
            counts = {status: report.count(status) for status in ("completed", "pruned", "failed", "interrupted")}
            table = (report.sweep_dir / SUMMARY_MD).read_text()
            print(sweep_summary(table, report.sweep_dir / SUMMARY_MD, counts), flush=True)
        except Exception as exc:
            log.warning("sweep summary not printed: %s", _one_line(exc))
        if self.wandb_table and _wandb_online(config):
            self._log_wandb_table(config, report)

    @staticmethod
    def _log_wandb_table(config: DictConfig, report: Report) -> None:
        def setting(key: str) -> Any:
            try:
                return OmegaConf.select(config, f"logger.wandb.{key}", default=None)
            except Exception:  # e.g. a resolver that needs a job's HydraConfig
                return None

        try:
            sweep = _sweep_name(config, report.sweep_dir)
            url = log_wandb_table(report, setting("project") or "resnet_exp", setting("entity"),
                                  _typed_group(config) or sweep, tags=[f"sweep={sweep}"])
            log.info("sweep summary logged to wandb: %s", url)
        except Exception as exc:
            log.warning("sweep summary not logged to wandb: %s", _one_line(exc))

    @staticmethod
    def _record_failure(config: DictConfig, job_return: JobReturn) -> None:
        try:
            run_dir = Path(str(config.hydra.runtime.output_dir))
            # The run may have removed its folder (failed while setting up): keep a trace of the job.
            error = getattr(job_return, "_return_value", None)
            write_json_atomic(run_dir / JOB_STATUS_FILE, {
                # "interrupted": a job that failed while set up to continue stays as it was
                "status": getattr(error, JOB_STATUS_ATTRIBUTE, "failed"),
                "error": _one_line(error),
                "overrides": list(job_return.overrides or []),
                "job_num": OmegaConf.select(config, "hydra.job.num", default=None),
            })
        except Exception as exc:
            log.warning("could not record the failed job: %s", _one_line(exc))


def _sweep_name(config: DictConfig, sweep_dir: Path) -> str:
    """The sweep's name as the jobs' `sweep_name` resolver gives it (Hydra's job name, e.g. `run`)."""
    job_name = OmegaConf.select(config, "hydra.job.name", default=None) or config.get("task_name", "train")
    return f"{job_name}-{sweep_dir.name}"


def _typed_group(config: DictConfig) -> str | None:
    """`logger.wandb.group` when the user typed a name. The default interpolation gives one group per
    configuration of a seed= sweep, so the sweep's table then goes to the sweep's own group."""
    node = OmegaConf.select(config, "logger.wandb", default=None)
    raw = OmegaConf.to_container(node, resolve=False) if isinstance(node, DictConfig) else {}
    group = raw.get("group")
    return group if isinstance(group, str) and group and "${" not in group else None


def _wandb_online(config: DictConfig) -> bool:
    mode = OmegaConf.select(config, "logger.wandb.mode", default=None)
    if mode == "online" or os.environ.get("WANDB_MODE") == "online":
        return True
    if mode != "auto" or os.environ.get("WANDB_MODE") in ("offline", "disabled", "dryrun"):
        return False
    from resnet_exp.loggers import wandb_credentials_configured

    return wandb_credentials_configured()


class SweepTable(Callback):
    """After a bench multirun (conf/bench.yaml): every job's rows in one bench.csv / bench.md in
    the sweep folder, printed."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from resnet_exp.bench.table import BENCH_CSV, write_sweep_tables

        sweep_dir = _sweep_dir(config)
        table = write_sweep_tables(sweep_dir)
        if table is not None:
            print(f"\n{table}\n\nall jobs: {sweep_dir / BENCH_CSV}", flush=True)
