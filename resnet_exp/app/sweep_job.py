"""The folder of one job, and in a resumed sweep what the job does with what its folder holds (decided again under
its lock): finished, left untouched, returning its saved metric; failed, started over, what it left moved into
`failed-<time>/`; otherwise continued from its newest loadable checkpoint, or started; in use, left to its process."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from resnet_exp.app.run_dir import LOCK_FILE, FolderInUse, RunFolder
from resnet_exp.errors import is_number
from resnet_exp.io import LAST_CHECKPOINT, RESULTS_FILE, is_rank_zero, newest_loadable, read_results
from resnet_exp.report import JOB_STATUS_FILE
from resnet_exp.report.rows import read_job

log = logging.getLogger(__name__)

FINISHED = ("completed", "diverged", "pruned")
JOB_STATUS_ATTRIBUTE = "job_status"  # "interrupted" on the error of a job that failed while set up to continue


def job_status(job: Path) -> str:
    """The job's status as the sweep report reads it (completed, diverged, failed, interrupted, ...)."""
    return str(read_job(job, job.parent)["status"])


def saved_metric(cfg: DictConfig, results: dict[str, Any] | None = None) -> float | None:
    """The job's `optimized_metric` (from `results`, else its folder's results.json), for sweepers."""
    if results is None:
        try:
            results = read_results(HydraConfig.get().runtime.output_dir)
        except (OSError, ValueError):
            return None
    metric = results.get(cfg.optimized_metric) if isinstance(results, dict) else None
    return float(metric) if is_number(metric) else None


def _leave(folder: RunFolder, why: str) -> None:
    folder.remove_record()  # printed, not logged: the job's log file is in the folder that stays as it is
    print(f"job {folder.path.name}: {why}; left as it is", flush=True)


def _prepare(cfg: DictConfig, folder: RunFolder) -> bool:
    """Under the job's lock: make the job continue, start over or start; False if finished (by another process)."""
    hc, job = HydraConfig.get(), folder.path
    status = job_status(job)
    if status in FINISHED:
        _leave(folder, f"finished already ({status})")
        return False
    if is_rank_zero():  # the other processes of a multi-process job only follow
        record, own = job / str(hc.output_subdir or ".hydra"), job / ".hydra"
        if record != own and not (own / "overrides.yaml").is_file() and record.is_dir():
            for path in record.iterdir():  # this attempt's record becomes the job's own
                path.replace(own / path.name)
            record.rmdir()
        if status == "failed":  # what it left goes aside; its record, lock and log (open already) stay
            keep = {".hydra", LOCK_FILE, f"{hc.job.name}.log"}
            left = [p for p in job.iterdir() if p.name not in keep and not p.name.startswith("failed-")]
            if left:
                aside = job / time.strftime("failed-%Y-%m-%d_%H-%M-%S")
                aside.mkdir(exist_ok=True)
                for path in left:
                    path.replace(aside / path.name)
                log.info("job %s: starting it over; what its failed attempt left is in %s", job.name, aside)
        else:
            (job / JOB_STATUS_FILE).unlink(missing_ok=True)  # an earlier attempt's note; this one writes its own
    checkpoint = None if status == "failed" else newest_loadable(job / LAST_CHECKPOINT.parent)
    if checkpoint is not None:  # what resume=<job dir> does
        cfg.resume, cfg.ckpt_path = str(job), str(checkpoint)
        log.info("job %s: continuing from %s", job.name, checkpoint.relative_to(job))
    return True


@contextmanager
def job_folder(cfg: DictConfig) -> Iterator[RunFolder | None]:
    """The job's RunFolder, locked; in a sweep, prepared, or None for a job to leave (finished, or in use)."""
    folder = RunFolder()
    if HydraConfig.get().mode != RunMode.MULTIRUN:
        with folder:
            yield folder
        return
    if (folder.path / RESULTS_FILE).is_file() and (status := job_status(folder.path)) in FINISHED:
        _leave(folder, f"finished already ({status})")
        yield None
        return
    with ExitStack() as stack:
        try:
            ready = stack.enter_context(folder) and _prepare(cfg, folder)
        except FolderInUse as exc:
            print(f"job {folder.path.name}: in use by another process ({exc.holder}); left to it", flush=True)
            ready = False
        if not ready:
            yield None
            return
        try:
            yield folder
        except Exception as exc:
            if cfg.get("ckpt_path") and not folder.is_set_up:
                setattr(exc, JOB_STATUS_ATTRIBUTE, "interrupted")
            raise
