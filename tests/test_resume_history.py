"""History survives resumes and kills: metrics.csv, step_times.csv, wandb runs, checkpoints."""

from __future__ import annotations

import csv
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.cli import TINY_RUN, cli_env, explain, train_in_process


def metric_epochs(run_dir: Path, metric: str) -> list[int]:
    with (run_dir / "csv" / "metrics.csv").open(newline="") as handle:
        return [int(r["epoch"]) for r in csv.DictReader(handle) if r.get(metric)]


def step_rows(run_dir: Path) -> list[int]:
    with (run_dir / "step_times.csv").open(newline="") as handle:
        return sorted(int(r["step"]) for r in csv.DictReader(handle))


@pytest.mark.slow
def test_history_survives_two_resumes_and_a_torn_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = train_in_process(*TINY_RUN, "trainer.max_epochs=1", "logger.wandb.mode=offline",
                            f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    # A crash while writing left last.ckpt cut short: resume takes the newest checkpoint that loads.
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    for epochs in (2, 3):
        proc = train_in_process(f"resume={run}", f"trainer.max_epochs={epochs}", cwd=tmp_path)
        assert proc.returncode == 0, explain(proc)
    results = json.loads((run / "results.json").read_text())
    assert results["epochs"] == 3
    assert metric_epochs(run, "val/acc") == [0, 1, 2]
    assert metric_epochs(run, "train/loss_epoch") == [0, 1, 2]
    assert step_rows(run) == list(range(results["steps"]))
    assert len(list((run / "wandb").glob("offline-run-*"))) == 3


# Kill the training process at a random moment once it has started writing its folder.
KILLS_PER_SEED = 2


def train_until_killed(args: list[str], cwd: Path, rng: random.Random, started) -> int | None:
    proc = subprocess.Popen([sys.executable, "-m", "resnet_exp.run", *args], cwd=cwd, env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None and not started():
        time.sleep(0.05)
    try:
        return proc.wait(timeout=rng.uniform(0.0, 4.0))
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return None


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_run_killed_at_random_moments_resumes_to_a_full_history(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    run = tmp_path / "run"
    first = [*TINY_RUN, "trainer.max_epochs=3", "data.train_size=192", "logger.wandb.mode=offline",
             f"hydra.run.dir={run}"]
    code = train_until_killed(first, tmp_path, rng, lambda: (run / "csv").exists())
    for _ in range(KILLS_PER_SEED - 1):
        if code is not None:
            break
        resumed = len(list((run / ".hydra").glob("resumed-*")))
        code = train_until_killed([f"resume={run}"], tmp_path, rng,
                                  lambda: len(list((run / ".hydra").glob("resumed-*"))) > resumed)
    # Killed at least once: the last resume runs to the end; unless the kill came after results.json
    # was written (while the process was closing down), when the run is finished and a resume refuses.
    if code != 0 and not (run / "results.json").is_file():
        proc = train_in_process(f"resume={run}", cwd=tmp_path)  # the kills needed a process; this does not
        assert proc.returncode == 0, explain(proc)
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "completed" and results["epochs"] == 3
    assert metric_epochs(run, "val/acc") == [0, 1, 2]
    assert step_rows(run) == list(range(results["steps"]))
    assert not list((run / "checkpoints").glob(".*.tmp"))
