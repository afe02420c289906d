"""A default run as a user starts it, in real processes: train (rich bar, as in a terminal; wandb
offline), evaluate its checkpoint, resume it one epoch further. Each writes nothing to stderr but
the lines allowed below; every output counts epochs the same way (from 1); run.log keeps the
validation lines and the summary block although the console showed a bar; wandb says at the start
that it is offline and where; `wandb leet <run>/wandb`, the README's command, lists the run."""

from __future__ import annotations

import csv
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from resnet_exp.report.curves import read_run
from tests.helpers.cli import TINY_RUN, explain, run_cli

pytestmark = pytest.mark.slow

# Lines a run may write to stderr. Nothing else: a warning a user can do nothing about is silenced
# where it is issued, and our own warnings never show up in a run that has nothing to warn about.
ALLOWED_STDERR: tuple[re.Pattern[str], ...] = ()
# Tiny settings (tests/helpers/cli.py) with wandb offline, as a machine without credentials runs,
# and steps logged often enough for a 6-step epoch (Lightning warns, rightly, otherwise).
RUN = [o for o in TINY_RUN if not o.startswith("logger.wandb.mode=")] + [
    "logger.wandb.mode=offline", "trainer.log_every_n_steps=2", "callbacks.progress_bar.style=rich"]
# What the user's shell has: wandb's own messages are not silenced for this test.
LOUD = {"WANDB_SILENT": "false"}


def unexpected(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines()
            if line.strip() and not any(p.search(line) for p in ALLOWED_STDERR)]


@dataclass
class Runs:
    """The trained run's folder, what it showed and left (read before the resume changes it), and
    the processes of the three commands."""

    run_dir: Path
    train: subprocess.CompletedProcess[str]
    log: str
    best_checkpoints: list[str]
    curve_epochs: list[int]
    csv_epochs: set[str]
    eval: subprocess.CompletedProcess[str]
    resume: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    work = tmp_path_factory.mktemp("quiet")
    run_dir = work / "run"
    train = run_cli("resnet_exp.run", *RUN, f"hydra.run.dir={run_dir}", cwd=work, **LOUD)
    assert train.returncode == 0, explain(train)
    with (run_dir / "csv" / "metrics.csv").open(newline="") as handle:
        csv_epochs = {r["epoch"] for r in csv.DictReader(handle) if r["epoch"]}
    seen = dict(log=(run_dir / "run.log").read_text(), csv_epochs=csv_epochs,
                best_checkpoints=sorted(p.name for p in (run_dir / "checkpoints").glob("best-*")),
                curve_epochs=[epoch for epoch, _ in read_run(run_dir).series("val/acc")])
    evaluated = run_cli("resnet_exp.eval", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
                        f"hydra.run.dir={work / 'eval'}", cwd=work, **LOUD)
    assert evaluated.returncode == 0, explain(evaluated)
    resumed = run_cli("resnet_exp.run", f"resume={run_dir}", "trainer.max_epochs=3", cwd=work, **LOUD)
    assert resumed.returncode == 0, explain(resumed)
    return Runs(run_dir, train, eval=evaluated, resume=resumed, **seen)


@pytest.mark.parametrize("command", ["train", "eval", "resume"])
def test_no_warning_on_stderr(runs: Runs, command: str) -> None:
    proc = getattr(runs, command)
    assert unexpected(proc.stderr) == [], proc.stderr


def test_every_output_counts_epochs_from_one(runs: Runs) -> None:
    out = runs.train.stdout
    best = int(re.search(r"best validation .* at epoch (\d) of 2\n", out).group(1))
    assert re.search(r"^Epoch 2/2 ", out, re.M), out  # the bar's last state
    assert "Epoch 0/" not in out and "v_num" not in out
    assert re.findall(r"epoch (\d) validated:", runs.log) == ["1", "2"]
    assert runs.best_checkpoints == [f"best-epoch{best:03d}.ckpt"]
    assert runs.curve_epochs == [1, 2]  # curves.png's x axis
    assert runs.csv_epochs == {"0", "1", "2"}  # metrics.csv: Lightning's index (2: the test row)
    assert "training          3 epochs" in runs.resume.stdout


def test_run_log_keeps_what_the_terminal_showed(runs: Runs) -> None:
    out = runs.train.stdout
    block = out[out.index("── run summary"):].strip()
    assert block in runs.log
    assert "epoch 2 validated: val/loss" in runs.log and "epoch 2 validated" not in out


def test_wandb_says_at_the_start_that_it_is_offline(runs: Runs) -> None:
    lines = runs.train.stdout.splitlines()
    said = [i for i, line in enumerate(lines) if "wandb is offline: this run logs into" in line]
    assert len(said) == 1 and "/wandb/offline-run-" in lines[said[0]] and "wandb sync" in lines[said[0]]
    assert said[0] < next(i for i, line in enumerate(lines) if line.startswith("Epoch "))


def terminal_screen(argv: list[str], seconds: float = 8.0) -> str:
    """What a terminal UI shows within `seconds` (escape sequences removed); then it is killed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the UI, in a pseudo-terminal
        os.environ["TERM"] = "xterm-256color"
        os.execv(argv[0], argv)
    out, end = b"", time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    break
    finally:
        os.killpg(pid, signal.SIGKILL)  # the UI and what it started (pty.fork made it a group leader)
        os.waitpid(pid, 0)
        os.close(fd)
    return re.sub(r"\x1b(\[[0-9;?<>=$]*[A-Za-z]|\][^\x07]*\x07|[()][A-Z0-9]|[=>])", "", out.decode(errors="replace"))


def test_wandb_leet_lists_the_run_when_pointed_at_its_wandb_folder(runs: Runs) -> None:
    wandb_cli = str(Path(sys.executable).with_name("wandb"))
    screen = terminal_screen([wandb_cli, "leet", str(runs.run_dir / "wandb")])
    assert "No runs found" not in screen and "offline-run-" in screen, screen[-2000:]


def test_a_run_without_validation_is_quiet_too(tmp_path: Path) -> None:
    """data.val_size=0 trains on the whole train split: no notice about an empty loader or a missing
    val/acc; the last weights are tested."""
    run_dir = tmp_path / "run"
    proc = run_cli("resnet_exp.run", *RUN, "data.val_size=0", f"hydra.run.dir={run_dir}", cwd=tmp_path, **LOUD)
    assert proc.returncode == 0, explain(proc)
    assert unexpected(proc.stderr) == [], explain(proc)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.ckpt"]
