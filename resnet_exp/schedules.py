"""Learning-rate schedules sized to the run: lengths in scheduler steps, warm-up chained in front.

The scheduler group gives a torch scheduler as a partial (`lr_scheduler`), how often it steps
(`interval` epoch|step, `frequency`) and an optional warm-up. What depends on the length of the
run is settled here, once the trainer knows it (`trainer.estimated_stepping_batches`):
- a cosine `T_max` or one-cycle `total_steps` left null spans the run after the warm-up, in the schedule's own unit, so
  `interval=step` counts optimizer steps and never epochs;
- multistep milestones at or beyond the end of the run are refused;
- milestones and `T_max` count from the start of the run, warm-up included.
No Lightning here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import ConstantLR, LinearLR, LRScheduler, SequentialLR

from resnet_exp.errors import ConfigError

WARMUPS = ("none", "linear", "constant")
NO_LENGTH = ("trainer.max_epochs=-1 with trainer.max_steps=-1: the run has no set length, which "
             "scheduler.lr_scheduler.{key}=null needs; set trainer.max_epochs or trainer.max_steps, "
             "or scheduler.lr_scheduler.{key}")


def schedule_length(optimizer_steps: float, steps_per_epoch: int, interval: str, frequency: int) -> float:
    """How many times the scheduler steps in a run of `optimizer_steps` (inf: no limit)."""
    if not math.isfinite(optimizer_steps):
        return math.inf
    units = optimizer_steps if interval == "step" else math.ceil(optimizer_steps / max(steps_per_epoch, 1))
    return units // frequency


def _unit(interval: str, frequency: int) -> str:
    unit = "optimizer steps" if interval == "step" else "epochs"
    return unit if frequency == 1 else f"scheduler steps (one every {frequency} {unit})"


def build_scheduler(optimizer: Optimizer, factory: Callable[..., LRScheduler] | None,
                    length: float | None, interval: str = "epoch", frequency: int = 1,
                    warmup: str = "none", warmup_length: int = 0,
                    warmup_lr_factor: float = 0.1) -> LRScheduler | None:
    """The run's scheduler: `factory`'s (sized to `length` scheduler steps when that is known),
    after `warmup_length` steps of `warmup`; None when there is neither."""
    if warmup not in WARMUPS:
        raise ConfigError(f"scheduler.warmup={warmup}: must be one of {', '.join(WARMUPS)}")
    lead = warmup_length if warmup != "none" else 0
    unit = _unit(interval, frequency)
    if length is not None and lead and lead >= length:
        raise ConfigError(f"scheduler.warmup_length={lead}: must be shorter than the run "
                          f"({length} {unit})")
    main = None
    if factory is not None:
        keywords: dict[str, Any] = dict(getattr(factory, "keywords", {}) or {})
        if "T_max" in keywords and keywords["T_max"] is None:
            if length is None or not math.isfinite(length):
                raise ConfigError(NO_LENGTH.format(key="T_max"))
            factory = partial(factory, T_max=int(length) - lead)
        if "total_steps" in keywords and keywords["total_steps"] is None:  # OneCycleLR over the run
            if length is None or not math.isfinite(length):
                raise ConfigError(NO_LENGTH.format(key="total_steps"))
            factory = partial(factory, total_steps=int(length) - lead)
        milestones = keywords.get("milestones")
        if milestones:
            milestones = [int(m) for m in milestones]
            if length is not None and max(milestones) >= length:
                raise ConfigError(f"scheduler.lr_scheduler.milestones={milestones}: beyond the end of the "
                                  f"run ({length} {unit}); each must be below {length}")
            if lead and min(milestones) <= lead:
                raise ConfigError(f"scheduler.lr_scheduler.milestones={milestones}: must come after the "
                                  f"warm-up (scheduler.warmup_length={lead})")
            if lead:  # SequentialLR restarts the main schedule at the end of the warm-up
                factory = partial(factory, milestones=[m - lead for m in milestones])
        main = factory(optimizer)
    if not lead:
        return main
    if warmup == "constant":
        warm = ConstantLR(optimizer, factor=warmup_lr_factor, total_iters=lead)
    else:
        warm = LinearLR(optimizer, start_factor=warmup_lr_factor, end_factor=1.0, total_iters=lead)
    if main is None:
        return warm
    return SequentialLR(optimizer, [warm, main], milestones=[lead])
