"""Learning-rate schedules as the run logs them: sized in the schedule's unit, warm-up in front."""

from __future__ import annotations

import csv
import math
from functools import partial
from pathlib import Path

import pytest
import torch
from torch.optim.lr_scheduler import MultiStepLR

from resnet_exp.errors import ConfigError
from resnet_exp.schedules import build_scheduler
from tests.helpers.cli import TINY_RUN, explain, run_train


def lrs(scheduler: torch.optim.lr_scheduler.LRScheduler, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        out.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def sgd(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_constant_warmup_then_multistep_counts_milestones_from_the_start() -> None:
    # The paper's ResNet-110: lr/10 for the first 4 steps, then lr, /10 at 10 and 15 (of 20).
    opt = sgd()
    scheduler = build_scheduler(opt, partial(MultiStepLR, milestones=[10, 15], gamma=0.1), 20, "step",
                                warmup="constant", warmup_length=4, warmup_lr_factor=0.1)
    expected = [0.01] * 4 + [0.1] * 6 + [0.01] * 5 + [0.001] * 5
    assert lrs(scheduler, 20) == pytest.approx(expected)


def test_multistep_milestones_beyond_the_run_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"^scheduler.lr_scheduler.milestones=\[50, 75\]: beyond the end "
                                          r"of the run \(10 epochs\); each must be below 10$"):
        build_scheduler(sgd(), partial(MultiStepLR, milestones=[50, 75]), 10, "epoch")


def test_cosine_per_step_spans_every_step_of_the_run(tmp_path: Path) -> None:
    # 192 training images in batches of 32: 6 steps an epoch, 12 in all; 3 of linear warm-up.
    run_dir = tmp_path / "run"
    proc = run_train(*TINY_RUN, "scheduler=cosine", "scheduler.interval=step", "scheduler.warmup=linear",
                     "scheduler.warmup_length=3", "scheduler.warmup_lr_factor=0.1", "optimizer.lr=0.1",
                     "callbacks.lr_monitor.logging_interval=step", "trainer.log_every_n_steps=1",
                     f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    with open(run_dir / "csv" / "metrics.csv", newline="") as handle:
        logged = {int(r["step"]): float(r["lr-SGD/pg1"]) for r in csv.DictReader(handle) if r.get("lr-SGD/pg1")}
    warm = [0.1 * (0.1 + 0.9 * k / 3) for k in range(3)]
    cosine = [0.1 * (1 + math.cos(math.pi * k / 9)) / 2 for k in range(9)]
    assert sorted(logged) == list(range(12))
    assert [logged[k] for k in range(12)] == pytest.approx(warm + cosine, rel=1e-6)


def test_a_schedule_longer_than_the_run_is_a_one_line_error(tmp_path: Path) -> None:
    proc = run_train(*TINY_RUN, "scheduler=multistep", cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: scheduler.lr_scheduler.milestones=[50, 75]: beyond the end of the run (2 epochs); "
        "each must be below 2")
