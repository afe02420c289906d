"""A run folder loses nothing: a failed resume keeps it, a typed folder of another run or sweep is
refused, a finished run is not trained again, and two processes never share one folder.

Each test starts from folders that already exist, as a user's do, and checks the files byte for byte.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from resnet_exp.app.arguments import hydra_quoted
from tests.helpers.cli import TINY_RUN, cli_env, explain, run_in_process, train_in_process

ONE_EPOCH = [*TINY_RUN, "trainer.max_epochs=1"]
ODD = "odd, dir 'ü'"  # a comma, a space, quotes and a non-ASCII letter: Hydra needs them quoted


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (the lock file aside) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-epoch run in a folder with an odd name (read-only for the tests: copy it)."""
    work = tmp_path_factory.mktemp("finished")
    run = work / ODD / "done"
    proc = train_in_process(*TINY_RUN, f"hydra.run.dir={hydra_quoted(run)}", cwd=work)
    assert proc.returncode == 0, explain(proc)
    return run


def copy_run(run: Path, to: Path) -> Path:
    subprocess.run(["cp", "-a", str(run), str(to)], check=True)
    return to


def test_failed_resume_keeps_the_run_it_resumes(tmp_path: Path) -> None:
    """A run killed while loading data leaves only `.hydra/` and its log; a resume that fails (here
    on a bad value) must leave them as they were, and its own `.hydra/resumed-*` record goes."""
    run = tmp_path / "outputs" / "train" / "runs" / "killed"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(ONE_EPOCH))
    (run / "run.log").write_text("[INFO] - Seed set to 42\n")
    before = snapshot(run)
    proc = train_in_process(f"resume={run}", "optimizer.lr=0", cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert proc.stderr.strip().splitlines()[-1] == "error: optimizer.lr=0.0: must be > 0"
    after = snapshot(run)
    assert after.keys() == before.keys() | ({"run.log"} & after.keys())
    assert after[".hydra/overrides.yaml"] == before[".hydra/overrides.yaml"]
    assert not list((run / ".hydra").glob("resumed-*"))


def test_failed_fresh_run_removes_only_the_folder_it_made(tmp_path: Path) -> None:
    proc = train_in_process(*ONE_EPOCH, "optimizer.lr=0", cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("key", ["hydra.run.dir", "+hydra.run.dir"])
def test_typed_run_dir_of_an_existing_run_is_refused(key: str, finished: Path, tmp_path: Path) -> None:
    before = snapshot(finished)
    proc = train_in_process(*ONE_EPOCH, f"{key}={hydra_quoted(finished)}", cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert proc.stderr.strip().splitlines() == [
        f"error: {key.lstrip('+')}={hydra_quoted(finished)}: {finished} holds a run already; continue it with "
        f"resume={finished}, or choose a new folder"]
    assert snapshot(finished) == before


def test_typed_sweep_dir_of_an_existing_sweep_is_refused(tmp_path: Path) -> None:
    sweep = tmp_path / ODD / "sweep"
    typed = f"hydra.sweep.dir={hydra_quoted(sweep)}"
    first = train_in_process("-m", *ONE_EPOCH, "arch.block_order=post", typed, cwd=tmp_path)
    assert first.returncode == 0, explain(first)
    before = snapshot(sweep)
    proc = train_in_process("-m", *ONE_EPOCH, "arch.block_order=post,pre", typed, cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {typed}: {sweep} holds a sweep")
    assert snapshot(sweep) == before


def test_resume_beyond_a_lowered_max_epochs_is_one_line(finished: Path, tmp_path: Path) -> None:
    run = copy_run(finished, tmp_path / "run")
    (run / "results.json").unlink()  # as if interrupted after its second epoch
    before = snapshot(run)
    proc = train_in_process(f"resume={run}", "trainer.max_epochs=1", cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: trainer.max_epochs=1: the checkpoint of resume={run} has reached epoch 2 already; "
        "resume with trainer.max_epochs >= 2")
    assert {k: v for k, v in snapshot(run).items() if k != "run.log"} == {k: v for k, v in before.items() if k != "run.log"}


@pytest.mark.parametrize("how", ["resume", "ckpt_path", "eval"])
def test_paths_with_commas_quotes_and_umlauts_resume_and_evaluate(how: str, finished: Path, tmp_path: Path) -> None:
    """A run folder whose path Hydra can only read quoted: resume=, ckpt_path= and eval take it as
    typed, unquoted (the shell already split the words), and quote it for Hydra themselves."""
    run = copy_run(finished, tmp_path / ODD)
    (run / "results.json").unlink()
    if how == "eval":
        proc = run_in_process("resnet_exp.eval", f"ckpt_path={run}/checkpoints/last.ckpt", cwd=tmp_path)
    else:
        target = run if how == "resume" else run / "checkpoints" / "last.ckpt"
        proc = train_in_process(f"{how}={target}", "trainer.max_epochs=3", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    if how != "eval":
        assert json.loads((run / "results.json").read_text())["epochs"] == 3


def test_resuming_a_finished_run_changes_nothing(finished: Path, tmp_path: Path) -> None:
    run = copy_run(finished, tmp_path / "run")
    before = snapshot(run)
    proc = train_in_process(f"resume={run}", cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: resume={run}: the run is finished (2 of trainer.max_epochs=2 epochs) and stays as it is; "
        "to train it longer add trainer.max_epochs=N with N > 2")
    after = snapshot(run)
    assert {k: v for k, v in after.items() if k != "run.log"} == {k: v for k, v in before.items() if k != "run.log"}


SLOW_RUN = [*TINY_RUN, "data.train_size=4096", "trainer.max_epochs=3"]  # a few seconds an epoch


def _start_slow_run(run: Path, cwd: Path) -> subprocess.Popen:
    """A real training process that holds `run` for a while."""
    return subprocess.Popen([sys.executable, "-m", "resnet_exp.run", *SLOW_RUN, f"hydra.run.dir={run}"],
                            cwd=cwd, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "the training process ended early"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.slow
def test_second_process_refuses_a_folder_in_use_and_a_stale_lock_is_taken_over(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = _start_slow_run(run, tmp_path)
    try:
        _wait_for(lambda: (run / "checkpoints" / "last.ckpt").is_file(), first)
        proc = train_in_process(f"resume={run}", cwd=tmp_path)  # a resume while the run still trains
        assert proc.returncode == 2, explain(proc)
        (line,) = proc.stderr.strip().splitlines()
        assert line.startswith(f"error: {run}: in use by another process (host ") and f"pid {first.pid}," in line
    finally:
        os.kill(first.pid, signal.SIGKILL)  # a crash: the lock file keeps the dead holder's line
        first.wait()
    assert f"pid {first.pid}" in (run / ".lock").read_text()
    proc = train_in_process(f"resume={run}", "trainer.max_epochs=1", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert "took over the lock of a process that is gone (host" in (run / "run.log").read_text()
    assert (run / ".lock").read_text() == ""  # released cleanly


def test_a_refused_resume_leaves_the_checkpoint_the_holder_is_writing(finished: Path, tmp_path: Path) -> None:
    """A checkpoint is written as `.last.ckpt.<random>.tmp`, then renamed: a resume that finds the run locked must
    not delete that file (the holder's rename then failed, and the run it was training died); once the lock is
    its own, such a file is a killed writer's and goes."""
    run = copy_run(finished, tmp_path / "run")
    (run / "results.json").unlink()  # interrupted before its end
    being_written = run / "checkpoints" / ".last.ckpt.k2x9q1.tmp"
    being_written.write_bytes(b"part of a checkpoint")
    with (run / ".lock").open("w") as lock:  # held as a training process holds it
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write("host elsewhere, pid 1, since 2026-12-06 03:30:00")
        lock.flush()
        refused = train_in_process(f"resume={run}", cwd=tmp_path)
    assert refused.returncode == 2, explain(refused)
    assert "in use by another process (host elsewhere, pid 1" in refused.stderr
    assert being_written.read_bytes() == b"part of a checkpoint"
    resumed = train_in_process(f"resume={run}", cwd=tmp_path)  # the holder is gone
    assert resumed.returncode == 0, explain(resumed)
    assert not being_written.exists()


@pytest.mark.slow
def test_two_resumes_at_once_one_refuses(finished: Path, tmp_path: Path) -> None:
    """Two resumes of one interrupted run started together: exactly one trains."""
    run = copy_run(finished, tmp_path / "run")
    (run / "results.json").unlink()  # interrupted before its end
    procs = [subprocess.Popen([sys.executable, "-m", "resnet_exp.run", f"resume={run}", "trainer.max_epochs=40"],
                              cwd=tmp_path, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outcomes = sorted((p.wait(timeout=600), p.stderr.read()) for p in procs)
    assert [code for code, _ in outcomes] == [0, 2], outcomes
    assert "in use by another process" in outcomes[1][1]
