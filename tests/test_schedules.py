"""Learning-rate schedules as the run logs them: sized in the schedule's unit, warm-up in front; each
conf/scheduler option instantiates one `Schedule` that builds the torch scheduler."""

from __future__ import annotations

import csv
import math
from functools import partial
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, MultiStepLR, OneCycleLR, SequentialLR

from resnet_exp.config import CONF_DIR, register_schemas
from resnet_exp.errors import ConfigError
from resnet_exp.schedules import Schedule
from tests.helpers.cli import TINY_RUN, explain, train_in_process


def lrs(scheduler: torch.optim.lr_scheduler.LRScheduler, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        out.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def sgd(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def compose_schedule(*overrides: str) -> Schedule:
    """The validated `scheduler` node of conf/config.yaml with `overrides`, instantiated."""
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    OmegaConf.to_object(cfg.scheduler)  # the schema's range checks
    schedule = instantiate(cfg.scheduler)
    assert isinstance(schedule, Schedule)
    return schedule


# A run of 100 epochs of 10 optimizer steps.
@pytest.mark.parametrize(("option", "kind", "interval", "size"), [
    ("cosine", CosineAnnealingLR, "epoch", {"T_max": 100}),
    ("multistep", MultiStepLR, "epoch", {"milestones": {50: 1, 75: 1}}),
    ("onecycle", OneCycleLR, "step", {"total_steps": 1000}),
])
def test_each_scheduler_option_builds_its_torch_scheduler_sized_to_the_run(option, kind, interval, size) -> None:
    schedule = compose_schedule(f"scheduler={option}")
    built = schedule.build(sgd(), 1000, steps_per_epoch=10)
    assert isinstance(built["scheduler"], kind) and (built["interval"], built["frequency"]) == (interval, 1)
    assert {k: getattr(built["scheduler"], k) for k in size} == size
    assert schedule.sized_to == (100 if interval == "epoch" else 1000)  # the length it was sized to


def test_scheduler_none_is_a_constant_lr_unless_warmed_up() -> None:
    constant = compose_schedule("scheduler=none")
    assert constant.constant and constant.build(sgd(), 1000, 10) is None
    warm = compose_schedule("scheduler=none", "scheduler.warmup=linear", "scheduler.warmup_length=3")
    built = warm.build(sgd(), 1000, 10)
    assert not warm.constant and isinstance(built["scheduler"], LinearLR)
    assert lrs(built["scheduler"], 5) == pytest.approx([0.01, 0.04, 0.07, 0.1, 0.1])


def test_warmup_chains_in_front_and_the_sized_schedule_spans_the_rest() -> None:
    schedule = compose_schedule("scheduler=cosine", "scheduler.warmup=constant", "scheduler.warmup_length=4")
    scheduler = schedule.build(sgd(), 200, steps_per_epoch=10)["scheduler"]
    assert isinstance(scheduler, SequentialLR)
    assert scheduler._schedulers[1].T_max == 20 - 4


def test_a_bad_enum_from_python_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError, match=r"^scheduler.warmup=slow: must be one of none, linear, constant$"):
        Schedule(warmup="slow")
    with pytest.raises(ConfigError, match=r"^scheduler.interval=batch: must be one of epoch, step$"):
        Schedule(interval="batch")


def test_constant_warmup_then_multistep_counts_milestones_from_the_start() -> None:
    # The paper's ResNet-110: lr/10 for the first 4 steps, then lr, /10 at 10 and 15 (of 20).
    opt = sgd()
    schedule = Schedule(partial(MultiStepLR, milestones=[10, 15], gamma=0.1), "step",
                        warmup="constant", warmup_length=4, warmup_lr_factor=0.1)
    scheduler = schedule.scheduler(opt, 20)
    expected = [0.01] * 4 + [0.1] * 6 + [0.01] * 5 + [0.001] * 5
    assert lrs(scheduler, 20) == pytest.approx(expected)


def test_multistep_milestones_beyond_the_run_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"^scheduler.lr_scheduler.milestones=\[50, 75\]: beyond the end "
                                          r"of the run \(10 epochs\); each must be below 10$"):
        Schedule(partial(MultiStepLR, milestones=[50, 75]), "epoch").scheduler(sgd(), 10)


def test_cosine_per_step_spans_every_step_of_the_run(tmp_path: Path) -> None:
    # 192 training images in batches of 32: 6 steps an epoch, 12 in all; 3 of linear warm-up.
    run_dir = tmp_path / "run"
    proc = train_in_process(*TINY_RUN, "scheduler=cosine", "scheduler.interval=step", "scheduler.warmup=linear",
                            "scheduler.warmup_length=3", "scheduler.warmup_lr_factor=0.1", "optimizer.lr=0.1",
                            "trainer.log_every_n_steps=1", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    with open(run_dir / "csv" / "metrics.csv", newline="") as handle:
        # The LR monitor's default interval is the step; the parameter groups have names.
        logged = {int(r["step"]): float(r["lr-SGD/weights"]) for r in csv.DictReader(handle)
                  if r.get("lr-SGD/weights")}
    warm = [0.1 * (0.1 + 0.9 * k / 3) for k in range(3)]
    cosine = [0.1 * (1 + math.cos(math.pi * k / 9)) / 2 for k in range(9)]
    assert sorted(logged) == list(range(12))
    assert [logged[k] for k in range(12)] == pytest.approx(warm + cosine, rel=1e-6)
    # The schedule stays out of the saved hyperparameters: plain values only.
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert set(saved["hyper_parameters"]) == {"num_classes", "label_smoothing", "decay_norm_and_bias",
                                              "example_input_shape", "tta"}


def test_a_schedule_longer_than_the_run_is_a_one_line_error(tmp_path: Path) -> None:
    proc = train_in_process(*TINY_RUN, "scheduler=multistep", cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: scheduler.lr_scheduler.milestones=[50, 75]: beyond the end of the run (2 epochs); "
        "each must be below 2")
