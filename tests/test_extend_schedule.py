"""Extending a run whose schedule is sized to it (cosine T_max / one-cycle total_steps left null):
the resumed run continues from the learning rate it reached and anneals to the schedule's final
rate at the new end, without a jump; a resume of the same length continues the schedule exactly.

Unit tests drive `Schedule.build` as Lightning does on resume (build, then load the checkpoint's
optimizer and scheduler state); the end-to-end tests read the learning rate of every step from the
run's own csv/metrics.csv and checkpoint."""

from __future__ import annotations

import csv
import math
import re
import shlex
from functools import partial
from pathlib import Path

import pytest
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, MultiStepLR, OneCycleLR

from resnet_exp.schedules import Reannealed, ResumePoint, Schedule
from tests.helpers.cli import REPO_ROOT, TINY_RUN, explain, run_in_process, train_in_process


def sgd(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9)


def lr_of(optimizer: torch.optim.Optimizer) -> float:
    return optimizer.param_groups[0]["lr"]


def train(scheduler: torch.optim.lr_scheduler.LRScheduler, steps: int) -> list[float]:
    """The learning rate of each of `steps` steps, stepping the scheduler after each."""
    seen = []
    for _ in range(steps):
        seen.append(lr_of(scheduler.optimizer))
        scheduler.optimizer.step()
        scheduler.step()
    return seen


def resume(schedule: Schedule, checkpoint: dict, length: int) -> torch.optim.lr_scheduler.LRScheduler:
    """What a resumed fit of `length` scheduler steps does: build, then restore the checkpoint's
    optimizer and scheduler state (Lightning's order)."""
    optimizer = sgd()
    built = schedule.build(optimizer, length, steps_per_epoch=1, resumed=ResumePoint.from_checkpoint(checkpoint))
    optimizer.load_state_dict(checkpoint["optimizer_states"][0])
    built["scheduler"].load_state_dict(checkpoint["lr_schedulers"][0])
    return built["scheduler"]


def checkpoint_after(schedule: Schedule, length: int, steps: int) -> tuple[dict, list[float]]:
    """The checkpoint dict of a run of `length` steps stopped after `steps`, and its learning rates."""
    optimizer = sgd()
    scheduler = schedule.build(optimizer, length, steps_per_epoch=1)["scheduler"]
    seen = train(scheduler, steps)
    return {"optimizer_states": [optimizer.state_dict()], "lr_schedulers": [scheduler.state_dict()],
            "schedule": {"sized_to": schedule.sized_to}}, seen


@pytest.mark.parametrize("option", ["cosine", "onecycle"])
def test_an_extended_schedule_goes_on_from_the_rate_reached_to_the_final_rate(option: str) -> None:
    factory = (partial(CosineAnnealingLR, T_max=None, eta_min=0.001) if option == "cosine"
               else partial(OneCycleLR, max_lr=0.1, total_steps=None))
    checkpoint, before = checkpoint_after(Schedule(factory, "step"), length=10, steps=6)
    reached = lr_of_checkpoint(checkpoint)
    scheduler = resume(Schedule(factory, "step"), checkpoint, length=20)
    assert isinstance(scheduler, Reannealed)
    after = train(scheduler, 14)
    final = 0.001 if option == "cosine" else 0.1 / 25 / 1e4
    expected = [final + (reached - final) * (1 + math.cos(math.pi * k / 14)) / 2 for k in range(14)]
    assert after == pytest.approx(expected, rel=1e-9)
    assert after[0] == pytest.approx(reached)  # no jump at the resume point
    assert lr_of(scheduler.optimizer) == pytest.approx(final)  # the new end
    assert all(a >= b for a, b in zip(after, after[1:]))


def lr_of_checkpoint(checkpoint: dict) -> float:
    return checkpoint["optimizer_states"][0]["param_groups"][0]["lr"]


def test_a_resume_of_the_same_length_continues_the_schedule_exactly() -> None:
    schedule = Schedule(partial(OneCycleLR, max_lr=0.1, total_steps=None), "step")
    _, whole = checkpoint_after(schedule, length=10, steps=10)
    checkpoint, before = checkpoint_after(schedule, length=10, steps=4)
    scheduler = resume(schedule, checkpoint, length=10)
    assert isinstance(scheduler, OneCycleLR)
    assert before + train(scheduler, 6) == pytest.approx(whole)


def test_a_replanned_schedule_resumes_exactly_and_can_be_extended_again() -> None:
    schedule = Schedule(partial(CosineAnnealingLR, T_max=None), "epoch")
    checkpoint, _ = checkpoint_after(schedule, length=4, steps=2)
    scheduler = resume(schedule, checkpoint, length=8)
    whole = train(scheduler, 6)
    scheduler = resume(schedule, checkpoint, length=8)
    part = train(scheduler, 3)
    # Checkpointed after 5 of 8 epochs, then resumed with the same length: the same plan goes on.
    again = {"optimizer_states": [scheduler.optimizer.state_dict()], "lr_schedulers": [scheduler.state_dict()],
             "schedule": {"sized_to": 8}}
    assert part + train(resume(schedule, again, length=8), 3) == pytest.approx(whole)
    # ... and extended once more: from the rate reached at epoch 5 down to 0 at epoch 12.
    longer = resume(schedule, again, length=12)
    assert train(longer, 7)[0] == pytest.approx(whole[3]) and lr_of(longer.optimizer) == pytest.approx(0.0)


@pytest.mark.parametrize("factory", [partial(MultiStepLR, milestones=[3], gamma=0.1),
                                     partial(CosineAnnealingLR, T_max=4)], ids=["multistep", "explicit T_max"])
def test_schedules_not_sized_to_the_run_continue_as_they_are(factory) -> None:
    schedule = Schedule(factory, "epoch")
    checkpoint, _ = checkpoint_after(schedule, length=4, steps=2)
    assert not isinstance(resume(schedule, checkpoint, length=8), Reannealed)


# ------------------------------------------------------------------------------- end to end
# 160 images, 64 of them held out: 3 optimizer steps an epoch.
SHORT = [*TINY_RUN, "data.train_size=160", "optimizer.lr=0.1", "callbacks.lr_monitor.logging_interval=step",
         "trainer.log_every_n_steps=1", "+callbacks.model_checkpoint.save_top_k=-1"]


def logged_lrs(run_dir: Path) -> dict[int, float]:
    """step -> learning rate (the weights' parameter group), as csv/metrics.csv holds it."""
    with (run_dir / "csv" / "metrics.csv").open(newline="") as handle:
        return {int(r["step"]): float(r["lr-SGD/weights"]) for r in csv.DictReader(handle) if r.get("lr-SGD/weights")}


def final_lr(run_dir: Path) -> float:
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    return saved["optimizer_states"][0]["param_groups"][0]["lr"]


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", [["scheduler=cosine", "scheduler.interval=step"], ["scheduler=onecycle"],
                                       ["scheduler=cosine"]], ids=["cosine-step", "onecycle", "cosine-epoch"])
def test_extending_a_run_from_its_first_epoch_is_continuous(scheduler: list[str], tmp_path: Path) -> None:
    """A 2-epoch run continued from its first epoch's checkpoint with trainer.max_epochs=3."""
    run = tmp_path / "run"
    proc = train_in_process(*SHORT, *scheduler, "trainer.max_epochs=2", f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    first = logged_lrs(run)
    proc = train_in_process(f"ckpt_path={run / 'checkpoints' / 'best-epoch001.ckpt'}", "trainer.max_epochs=3",
                            cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    lrs = logged_lrs(run)
    assert sorted(lrs) == list(range(9))
    assert [lrs[s] for s in range(4)] == pytest.approx([first[s] for s in range(4)])  # up to the resume point
    final = 0.0 if scheduler[0] == "scheduler=cosine" else 0.1 / 25 / 1e4
    if "scheduler.interval=step" in scheduler or scheduler == ["scheduler=onecycle"]:
        expected = [final + (first[3] - final) * (1 + math.cos(math.pi * k / 6)) / 2 for k in range(6)]
    else:  # one scheduler step an epoch, from epoch 1 of 3
        expected = [final + (first[3] - final) * (1 + math.cos(math.pi * k / 2)) / 2 for k in (0, 0, 0, 1, 1, 1)]
    assert [lrs[s] for s in range(3, 9)] == pytest.approx(expected, rel=1e-5, abs=1e-12)
    assert final_lr(run) == pytest.approx(final, abs=1e-12)


def readme_extend_command() -> str:
    """README's command that extends a run: `python -m resnet_exp.run resume=... trainer.max_epochs=N`."""
    found = re.findall(r"^(python -m resnet_exp\.run resume=\S+ trainer\.max_epochs=\d+)",
                       (REPO_ROOT / "README.md").read_text(), flags=re.M)
    assert found, "README no longer shows how to extend a run"
    return found[0]


@pytest.mark.slow
def test_the_readme_extend_command_works_for_the_quick_start_recipe(tmp_path: Path) -> None:
    """The quick start's one-cycle run, tiny, trained for 1 epoch, then extended as the README says:
    from the rate the finished one-cycle left down to its final rate, never up again."""
    time = "2026-01-01_00-00-00"
    tiny = ["experiment=quickstart", "data=synthetic_fashion_mnist", "data.train_size=160", "data.val_size=64",
            "data.test_size=64", "data.batch_size=32", "data.eval_batch_size=64", "trainer.accelerator=cpu",
            "trainer.devices=1", "logger.wandb.mode=disabled", "callbacks.lr_monitor.logging_interval=step",
            "trainer.log_every_n_steps=1", "trainer.max_epochs=1"]
    proc = train_in_process(*tiny, f"hydra.run.dir=outputs/train/runs/{time}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    run = tmp_path / "outputs" / "train" / "runs" / time
    reached = final_lr(run)
    argv = shlex.split(readme_extend_command().replace("<time>", time))
    proc = run_in_process(argv[2], *argv[3:], cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    steps = 3 * int(argv[-1].split("=")[1])
    lrs = logged_lrs(run)
    assert sorted(lrs) == list(range(steps))
    final = 0.1 / 25 / 1e4
    expected = [final + (reached - final) * (1 + math.cos(math.pi * k / (steps - 3))) / 2 for k in range(steps - 3)]
    assert [lrs[s] for s in range(3, steps)] == pytest.approx(expected, rel=1e-6)
    resumed = [lrs[s] for s in range(3, steps)]
    assert all(a >= b for a, b in zip(resumed, resumed[1:]))  # no second warm-up towards the peak of 0.1
    assert final_lr(run) == pytest.approx(final)
