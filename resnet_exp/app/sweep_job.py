"""The folder of one job, and in a sweep what the job does with what its folder already holds.

A job of a sweep decides from its own folder (so with any sweeper and any launcher); its folder
is there from an earlier run of the sweep only when the sweep is resumed (`-m resume=<sweep dir>`):

- finished (results.json with status completed, diverged or pruned): left as it is, untouched (no
  lock, this attempt's `.hydra/resumed-*` record removed again); the job returns its saved metric;
- failed (the sweep report's status: job_status.json, or an error in its log): started over in its
  folder. What the failed attempt left (checkpoints, csv/, wandb/, ...) is moved into
  `failed-<time>/`, so the new attempt has a history and a wandb run of its own;
- otherwise (interrupted, or never started): continued from its newest loadable checkpoint exactly
  as `resume=<job dir>` continues a run (same folder, same wandb run), or started when it has none;
- in use by another process (a second resume of the sweep at once): left to that process; the
  sweep goes on with its next job.

A job without its own `.hydra/overrides.yaml` (never started) gets this attempt's Hydra record
there, so that it is a run folder like any other. The decision is taken again under the job's
lock, so that two processes never train one job.
"""

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
from resnet_exp.io import LAST_CHECKPOINT, RESULTS_FILE, is_rank_zero, newest_loadable, read_results, remove_temp_files
from resnet_exp.report import JOB_STATUS_FILE
from resnet_exp.report.rows import read_job

log = logging.getLogger(__name__)

FINISHED = ("completed", "diverged", "pruned")
# Set on the error of a job that failed while it was being set up to continue its checkpoint: the
# job is still as it was (interrupted), and the sweep report records it so.
JOB_STATUS_ATTRIBUTE = "job_status"


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
    return float(metric) if isinstance(metric, (int, float)) and not isinstance(metric, bool) else None


def _leave(folder: RunFolder, why: str) -> None:
    # print, not log: the job's log file is in the folder that stays as it is
    folder.remove_record()
    print(f"job {folder.path.name}: {why}; left as it is", flush=True)


def _give_record(job: Path, record: Path) -> None:
    """A job without its own `.hydra/overrides.yaml` gets this attempt's record as its own."""
    own = job / ".hydra"
    if record == own or (own / "overrides.yaml").is_file() or not record.is_dir():
        return
    for path in record.iterdir():
        path.replace(own / path.name)
    record.rmdir()


def _start_over(job: Path, job_name: str) -> None:
    """Move what a failed attempt left into `failed-<time>/` (the job's record, its lock and its
    log, which Hydra has open already, stay)."""
    keep = {".hydra", LOCK_FILE, f"{job_name}.log"}
    left = [p for p in job.iterdir() if p.name not in keep and not p.name.startswith("failed-")]
    if not left:
        return
    aside = job / time.strftime("failed-%Y-%m-%d_%H-%M-%S")
    aside.mkdir(exist_ok=True)
    for path in left:
        path.replace(aside / path.name)
    log.info("job %s: starting it over; what its failed attempt left is in %s", job.name, aside)


def _prepare(cfg: DictConfig, folder: RunFolder) -> bool:
    """Under the job's lock: make the job continue, start over or start; False when it turned out
    finished (by another process a moment ago)."""
    hc = HydraConfig.get()
    job = folder.path
    status = job_status(job)
    if status in FINISHED:
        _leave(folder, f"finished already ({status})")
        return False
    if is_rank_zero():  # the other processes of a multi-process job only follow
        _give_record(job, job / str(hc.output_subdir or ".hydra"))
        if status == "failed":
            _start_over(job, hc.job.name)
        else:
            (job / JOB_STATUS_FILE).unlink(missing_ok=True)  # an earlier attempt's note; this one writes its own
            remove_temp_files(job / LAST_CHECKPOINT.parent)
    if status == "failed":
        return True
    checkpoint = newest_loadable(job / LAST_CHECKPOINT.parent)
    if checkpoint is not None:  # what resume=<job dir> does
        cfg.resume, cfg.ckpt_path = str(job), str(checkpoint)
        log.info("job %s: continuing from %s", job.name, checkpoint.relative_to(job))
    return True


@contextmanager
def job_folder(cfg: DictConfig) -> Iterator[RunFolder | None]:
    """The job's RunFolder, locked, for the `with` block; in a sweep, None for a job to leave as it
    is (finished, or in use by another process), and the job prepared to continue or start over."""
    if HydraConfig.get().mode != RunMode.MULTIRUN:
        with RunFolder() as folder:
            yield folder
        return
    folder = RunFolder()
    if (folder.path / RESULTS_FILE).is_file() and (status := job_status(folder.path)) in FINISHED:
        _leave(folder, f"finished already ({status})")
        yield None
        return
    with ExitStack() as stack:
        try:
            stack.enter_context(folder)
        except FolderInUse as exc:
            print(f"job {folder.path.name}: in use by another process ({exc.holder}); left to it", flush=True)
            yield None
            return
        if not _prepare(cfg, folder):
            yield None
            return
        try:
            yield folder
        except Exception as exc:
            if cfg.get("ckpt_path") and not folder.is_set_up:
                setattr(exc, JOB_STATUS_ATTRIBUTE, "interrupted")
            raise
