"""SIGTERM (a batch scheduler's time limit, `kill`): the run stops with exit code 143 and one
`error:` line naming the resume command, saves its state at the moment of the signal, writes no
results.json, and the printed command finishes it as if it had never stopped. A sweep stops as
a whole.

The signal is a real SIGTERM sent to the run's own process by a test callback
(tests/helpers/kill_at_step.py) at a chosen step, so the moment is exact. The signalled runs are
real processes (exit code 143 as the shell sees it); the runs they are compared with, and the
printed resume command, run in this process."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from resnet_exp.app.signals import TERMINATED_EXIT_CODE, sigterm_raises
from resnet_exp.errors import Terminated
from tests.helpers.cli import explain, run_in_process, run_train, train_in_process
from tests.test_resume import DETERMINISTIC, comparable

KILLER = "+callbacks.killer._target_=tests.helpers.kill_at_step.KillAtStep"
SIGTERM_AT = {"KILL_SIGNAL": "SIGTERM"}


def error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def test_exit_code_is_what_a_shell_reports_for_sigterm() -> None:
    assert TERMINATED_EXIT_CODE == 128 + signal.SIGTERM == 143


@pytest.mark.slow
def test_sigterm_mid_epoch_saves_that_step_and_the_printed_command_finishes_the_run(tmp_path: Path) -> None:
    """6 steps an epoch; SIGTERM after step 10, in the middle of the second epoch."""
    args = [*DETERMINISTIC, "logger.wandb.mode=disabled", KILLER]
    whole, part = tmp_path / "whole", tmp_path / "part"
    proc = train_in_process(*args, f"hydra.run.dir={whole}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)

    proc = run_train(*args, f"hydra.run.dir={part}", cwd=tmp_path, KILL_AT_STEP="10", **SIGTERM_AT)
    assert proc.returncode == TERMINATED_EXIT_CODE, explain(proc)
    (line,) = error_lines(proc)
    assert proc.stderr.strip().splitlines()[-1] == line
    assert line.startswith("error: stopped by SIGTERM at training step 10 (epoch 2)"), line
    assert f"resume={part}" in line
    assert not (part / "results.json").exists()
    saved = torch.load(part / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 10 and saved["epoch"] == 1  # 4 of the second epoch's 6 steps

    command = shlex.split(line.split("resume with: ", 1)[1])
    assert command[:3] == ["python", "-m", "resnet_exp.run"]
    proc = run_in_process(command[2], *command[3:], cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert comparable(part) == comparable(whole)


@pytest.mark.slow
def test_sigterm_stops_the_whole_sweep(tmp_path: Path) -> None:
    """The first of two jobs gets SIGTERM: the second never starts, and the sweep exits 143. The printed
    command then continues the stopped job from its saved state (it is interrupted, not failed)."""
    sweep = tmp_path / "sweep"
    proc = run_train("-m", *DETERMINISTIC, "logger.wandb.mode=disabled", KILLER, "seed=1,2",
                     f"hydra.sweep.dir={sweep}", cwd=tmp_path, KILL_AT_STEP="3", **SIGTERM_AT)
    assert proc.returncode == TERMINATED_EXIT_CODE, explain(proc)
    (line,) = error_lines(proc)
    assert "stopped by SIGTERM at training step 3" in line and "the sweep stops here" in line, line
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and (p / ".hydra").is_dir())
    assert len(jobs) == 1 and f"resume the sweep with: python -m resnet_exp.run -m resume={sweep}" in line
    assert f"(this job alone: python -m resnet_exp.run resume={jobs[0]})" in line
    assert (jobs[0] / "checkpoints" / "last.ckpt").is_file() and not (jobs[0] / "results.json").exists()
    assert json.loads((jobs[0] / "job_status.json").read_text())["status"] == "interrupted"

    proc = train_in_process("-m", f"resume={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert f"job {jobs[0].name}: continuing from checkpoints/last.ckpt" in (jobs[0] / "run.log").read_text()
    assert not list(jobs[0].glob("failed-*"))
    assert all(json.loads((job / "results.json").read_text())["status"] == "completed"
               for job in sweep.iterdir() if (job / ".hydra").is_dir())


def test_sigterm_outside_training_is_an_error_not_a_silent_exit() -> None:
    """Where Lightning does not handle it (setting up, writing results), a SIGTERM raises at once;
    the previous handler is back afterwards."""
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated, match="stopped by SIGTERM"), sigterm_raises():
        signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_while_the_run_is_set_up_removes_the_new_folder(tmp_path: Path) -> None:
    """Stopped while it is built: exit 143, one line saying to run it again, no folder left."""
    run = tmp_path / "run"
    proc = run_train(*DETERMINISTIC, "+callbacks.early._target_=tests.helpers.kill_at_step.KillWhileSettingUp",
                     f"hydra.run.dir={run}", cwd=tmp_path, **SIGTERM_AT)
    assert proc.returncode == TERMINATED_EXIT_CODE, explain(proc)
    (line,) = error_lines(proc)
    assert line == ("error: stopped by SIGTERM while the run was being set up; nothing was trained: "
                    "run the command again"), line
    assert not run.exists()
