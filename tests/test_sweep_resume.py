"""Resumed sweeps (`-m resume=<sweep dir>`): finished jobs stay untouched, an interrupted job
continues from its checkpoint (same wandb run), a failed one starts over, a job another process
holds is left to it, and the summary covers every job.

The kill goes through a real process (SIGKILL); the resumes run in this process."""

from __future__ import annotations

import csv
import fcntl
import json
import os
from pathlib import Path

import pytest

from tests.helpers.cli import TINY_RUN, explain, run_train, train_in_process

# 6 steps an epoch; jobs of one epoch never reach step 8, jobs of two do in their second epoch,
# after the checkpoint of their first (last.ckpt at step 6).
SWEEP = [*TINY_RUN, "trainer.max_epochs=1,2", "arch.block_order=post,pre"]
JOBS = ["0-1-post", "1-1-pre", "2-2-post", "3-2-pre"]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def results(job: Path) -> dict:
    return json.loads((job / "results.json").read_text())


def statuses(sweep: Path) -> dict[str, str]:
    with (sweep / "summary.csv").open(newline="") as handle:
        return {row["job"]: row["status"] for row in csv.DictReader(handle)}


def step_rows(job: Path) -> list[int]:
    with (job / "step_times.csv").open(newline="") as handle:
        return sorted(int(r["step"]) for r in csv.DictReader(handle))


@pytest.mark.slow
def test_killed_sweep_resumes_to_every_job_completed_and_leaves_finished_jobs_untouched(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_train("-m", *SWEEP, "logger.wandb.mode=offline",
                     "+callbacks.killer._target_=tests.helpers.kill_at_step.KillAtStep",
                     f"hydra.sweep.dir={sweep}", cwd=tmp_path, KILL_AT_STEP="8")
    assert proc.returncode == -9, explain(proc)
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == JOBS[:3]
    finished = {job: snapshot(sweep / job) for job in JOBS[:2]}
    assert all("results.json" in files for files in finished.values())
    killed = sweep / JOBS[2]
    assert (killed / "checkpoints" / "last.ckpt").is_file() and not (killed / "results.json").exists()

    proc = train_in_process("-m", f"resume={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert statuses(sweep) == dict.fromkeys(JOBS, "completed")
    for job, files in finished.items():
        assert snapshot(sweep / job) == files, job
        assert f"job {job}: finished already (completed); left as it is" in proc.stdout
    # The killed job continued from its checkpoint, in its folder, in its wandb run.
    assert "job 2-2-post: continuing from checkpoints/last.ckpt" in (killed / "run.log").read_text()
    assert results(killed)["epochs"] == 2 and step_rows(killed) == list(range(results(killed)["steps"]))
    segments = sorted((killed / "wandb").glob("offline-run-*"))
    assert len(segments) == 2 and len({s.name.rsplit("-", 1)[1] for s in segments}) == 1
    assert (killed / ".hydra" / "overrides.yaml").is_file() and list((killed / ".hydra").glob("resumed-*"))
    # The job that never started ran in its own folder, a run folder like any other.
    assert results(sweep / JOBS[3])["epochs"] == 2
    assert (sweep / JOBS[3] / ".hydra" / "overrides.yaml").is_file()

    # Resuming the finished sweep trains nothing and says so.
    everything = snapshot(sweep)
    proc = train_in_process("-m", f"resume={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert proc.stdout.count("finished already (completed); left as it is") == 4
    assert {k: v for k, v in snapshot(sweep).items() if "/" in k} == {k: v for k, v in everything.items() if "/" in k}


def test_failed_job_starts_over_and_a_finished_one_is_left(tmp_path: Path) -> None:
    """Job 1 fails at step 8, after its first epoch's checkpoint: resumed, it starts over (it does
    not continue that checkpoint), with what the failed attempt left moved into failed-<time>/."""
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY_RUN, "trainer.max_epochs=1,2", "+callbacks.failer._target_=tests.helpers.kill_at_step.FailAtStep"]
    proc = train_in_process(*args, f"hydra.sweep.dir={sweep}", cwd=tmp_path, FAIL_AT_STEP="8")
    assert proc.returncode != 0, explain(proc)
    done, failed = sweep / "0-1", sweep / "1-2"
    assert statuses(sweep) == {"0-1": "completed", "1-2": "failed"}
    before = snapshot(done)

    proc = train_in_process("-m", f"resume={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert snapshot(done) == before
    assert statuses(sweep) == {"0-1": "completed", "1-2": "completed"}
    (aside,) = failed.glob("failed-*")
    assert (aside / "job_status.json").is_file() and (aside / "checkpoints" / "last.ckpt").is_file()
    assert not (failed / "job_status.json").exists()
    assert step_rows(failed) == list(range(12))  # every step of a run from the start, each once
    assert "continuing from" not in (failed / "run.log").read_text()


def test_a_job_another_process_holds_is_left_to_it(tmp_path: Path) -> None:
    """Two resumes of one sweep at once never train one job twice: while another process holds an
    interrupted job's folder, a resume leaves that job as it is and goes on; later it continues."""
    sweep = tmp_path / "sweep"
    proc = train_in_process("-m", *TINY_RUN, "trainer.max_epochs=1", "arch.block_order=post,pre",
                            f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    held = sweep / "1-pre"
    (held / "results.json").unlink()  # as if killed after its last checkpoint
    fd = os.open(held / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.pwrite(fd, b"host elsewhere, pid 1", 0)
        before = snapshot(held)
        proc = train_in_process("-m", f"resume={sweep}", cwd=tmp_path)
    finally:
        os.close(fd)
    assert proc.returncode == 0, explain(proc)
    assert "job 1-pre: in use by another process (host elsewhere, pid 1); left to it" in proc.stdout
    assert snapshot(held) == before
    assert statuses(sweep) == {"0-post": "completed", "1-pre": "interrupted"}

    # A resume whose set-up of the job fails (a typed optimizer its checkpoint's state does not fit)
    # leaves the job as it was, interrupted; typed keys apply to that resume only.
    checkpoints = snapshot(held / "checkpoints")
    proc = train_in_process("-m", f"resume={sweep}", "optimizer=adam", cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert "optimizer state does not fit optimizer=adam" in proc.stderr.strip().splitlines()[-1]
    marker = json.loads((held / "job_status.json").read_text())
    assert marker["status"] == "interrupted" and "optimizer=adam" in marker["error"]
    assert snapshot(held / "checkpoints") == checkpoints and not list((held / ".hydra").glob("resumed-*"))
    assert statuses(sweep) == {"0-post": "completed", "1-pre": "interrupted"}

    proc = train_in_process("-m", f"resume={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert statuses(sweep) == {"0-post": "completed", "1-pre": "completed"}
    assert results(held)["epochs"] == 1


@pytest.mark.slow
def test_a_killed_search_resumes_its_study_to_n_trials(tmp_path: Path) -> None:
    """A search killed in its second trial: the resume continues the same study (the sqlite file in
    the sweep folder), fails the dead process's trial by its heartbeat, retries its parameters and
    stops at n_trials finished trials of this folder; the finished trial's folder is untouched."""
    import subprocess
    import sys
    import time

    import optuna
    from optuna.trial import TrialState

    from tests.helpers.cli import cli_env

    sweep = tmp_path / "search"
    args = ["-m", "hparams_search=lr_wd", *TINY_RUN, "trainer.max_epochs=2", "hydra.sweeper.n_trials=2",
            "hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=1", f"hydra.sweep.dir={sweep}"]
    search = subprocess.Popen([sys.executable, "-m", "resnet_exp.run", *args], cwd=tmp_path, env=cli_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:  # kill it once trial 0 is finished and trial 1 has a checkpoint
        deadline = time.monotonic() + 600
        while not list(sweep.glob("1-*/checkpoints/last.ckpt")):
            assert search.poll() is None and time.monotonic() < deadline, "the search ended before its second trial"
            time.sleep(0.2)
    finally:
        search.kill()
        search.wait()
    (first,) = sweep.glob("0-*")
    finished = snapshot(first)
    time.sleep(2.5)  # past the heartbeat's grace period: trial 1's process is gone

    proc = train_in_process("-m", f"resume={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    study = optuna.load_study(study_name=sweep.name, storage=f"sqlite:///{sweep}/optuna.db")
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE], states
    assert study.trials[2].params == study.trials[1].params  # the dead trial's point, run again
    assert snapshot(first) == finished
    assert "completed" in (sweep / "summary.md").read_text()
