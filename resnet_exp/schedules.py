"""Learning-rate schedules sized to the run (in scheduler steps), warm-up chained in front; a resumed run of
another length than its checkpoint's schedule continues on a re-planned one (`Reannealed`), without a jump."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from enum import Enum
from functools import partial
from typing import Any, NamedTuple

from torch.optim import Optimizer
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

from resnet_exp.errors import ConfigError, parse_enum

SchedulerFactory = Callable[[Optimizer], LRScheduler]
# Arguments of torch schedulers that, left null, span the run after the warm-up (cosine, one-cycle).
RUN_LENGTH_KEYS = ("T_max", "total_steps")
NO_LENGTH = ("trainer.max_epochs=-1 with trainer.max_steps=-1: the run has no set length, which "
             "scheduler.lr_scheduler.{key}=null needs; set trainer.max_epochs or trainer.max_steps, "
             "or scheduler.lr_scheduler.{key}")


def _null_lengths(keywords: Mapping[str, Any]) -> list[str]:
    return [key for key in RUN_LENGTH_KEYS if key in keywords and keywords[key] is None]


def check_run_length(keywords: Mapping[str, Any], length: float | None) -> None:
    """Refuse a RUN_LENGTH_KEYS argument left null in `keywords` when the run's `length` is None or inf."""
    for key in _null_lengths(keywords):
        if length is None or not math.isfinite(length):
            raise ConfigError(NO_LENGTH.format(key=key))


class ResumePoint(NamedTuple):
    """Where a checkpoint's schedule stands: scheduler steps taken, each parameter group's rate, the length
    it was sized to (None: unknown), and a `Reannealed`'s plan (else None)."""

    step: int
    lrs: list[float]
    sized_to: float | None
    plan: dict[str, Any] | None

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping[str, Any]) -> ResumePoint | None:
        """Read from a Lightning checkpoint's dict; None without exactly one optimizer and scheduler."""
        schedulers, optimizers = checkpoint.get("lr_schedulers") or [], checkpoint.get("optimizer_states") or []
        if len(schedulers) != 1 or len(optimizers) != 1 or "last_epoch" not in schedulers[0]:
            return None
        state = schedulers[0]
        # Without the module's record, a cosine or one-cycle with no warm-up keeps its length in its state.
        sized_to = (checkpoint.get("schedule") or {}).get("sized_to", state.get("T_max", state.get("total_steps")))
        return cls(step=int(state["last_epoch"]), lrs=[float(g["lr"]) for g in optimizers[0]["param_groups"]],
                   sized_to=sized_to, plan=state.get("plan"))


class Reannealed(LRScheduler):
    """A half cosine from `start_lrs` at scheduler step `start` to `final_lrs` at `end`: a resumed run's
    schedule re-planned to a new length. Its whole plan is in its state."""

    def __init__(self, optimizer: Optimizer, start: int, start_lrs: list[float], final_lrs: list[float],
                 end: int, last_epoch: int = -1) -> None:
        self.plan = {"start": int(start), "start_lrs": [float(x) for x in start_lrs],
                     "final_lrs": [float(x) for x in final_lrs], "end": int(end)}
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        plan = self.plan
        done = min(max(self.last_epoch - plan["start"], 0) / max(plan["end"] - plan["start"], 1), 1.0)
        return [final + (start - final) * (1 + math.cos(math.pi * done)) / 2
                for start, final in zip(plan["start_lrs"], plan["final_lrs"])]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "plan" in state_dict:
            super().load_state_dict(state_dict)
        else:  # the state of the schedule this one re-plans: only its step counts
            self.last_epoch = int(state_dict["last_epoch"])


class Interval(str, Enum):
    """What one scheduler step follows."""

    epoch = "epoch"
    step = "step"  # an optimizer step


class Warmup(str, Enum):
    """How the learning rate starts, before the scheduler takes over."""

    none = "none"
    linear = "linear"  # from warmup_lr_factor x lr up to lr over warmup_length scheduler steps
    constant = "constant"  # warmup_lr_factor x lr for warmup_length scheduler steps, then lr


class Schedule:
    """`lr_scheduler` (a partial taking the optimizer; None: a constant LR) stepped every `frequency` `interval`s
    after `warmup_length` steps of `warmup`. Not a dataclass: `instantiate` would read one as a config."""

    def __init__(self, lr_scheduler: SchedulerFactory | None = None, interval: Interval | str = Interval.epoch,
                 frequency: int = 1, warmup: Warmup | str = Warmup.none, warmup_length: int = 0,
                 warmup_lr_factor: float = 0.1) -> None:
        self.lr_scheduler = lr_scheduler
        self.interval = parse_enum(Interval, "scheduler.interval", interval)
        self.frequency = int(frequency)
        self.warmup = parse_enum(Warmup, "scheduler.warmup", warmup)
        self.warmup_length = int(warmup_length)
        self.warmup_lr_factor = float(warmup_lr_factor)
        # The length (scheduler steps) the last `build` sized the schedule to (None: none yet, or unknown).
        self.sized_to: float | None = None
        self.final_lrs: list[float] = []  # where the last built schedule ends, per parameter group

    @property
    def warmup_steps(self) -> int:
        return self.warmup_length if self.warmup != Warmup.none else 0

    @property
    def sized_to_run(self) -> bool:
        """True if the schedule's length follows the run's (a RUN_LENGTH_KEYS argument left null)."""
        return bool(_null_lengths(getattr(self.lr_scheduler, "keywords", None) or {}))

    @property
    def constant(self) -> bool:
        """True if the learning rate never changes: no scheduler and no warm-up."""
        return self.lr_scheduler is None and not self.warmup_steps

    def length(self, optimizer_steps: float | None, steps_per_epoch: int) -> float | None:
        """Scheduler steps in a run of `optimizer_steps` (None: unknown, inf: no limit)."""
        if optimizer_steps is None or not math.isfinite(optimizer_steps):
            return optimizer_steps
        if self.interval == Interval.epoch:
            optimizer_steps = math.ceil(optimizer_steps / max(steps_per_epoch, 1))
        return optimizer_steps // self.frequency

    def build(self, optimizer: Optimizer, optimizer_steps: float | None, steps_per_epoch: int = 1,
              resumed: ResumePoint | None = None) -> dict[str, Any] | None:
        """Lightning's `lr_scheduler` entry (None: a constant rate), re-planned when it continues a checkpoint's
        schedule (`resumed`) sized to another length."""
        length = self.length(optimizer_steps, steps_per_epoch)
        scheduler = self.scheduler(optimizer, length)
        self.sized_to = length
        if scheduler is None:
            return None
        if resumed is not None and length is not None and math.isfinite(length):
            plan = {"start": resumed.step, "start_lrs": resumed.lrs, "final_lrs": self.final_lrs, "end": int(length)}
            if resumed.plan is not None:  # re-planned before: the same plan, unless the length changed again
                plan = resumed.plan if resumed.plan["end"] == length else plan
            elif not self.sized_to_run or resumed.sized_to is None or resumed.sized_to == length:
                plan = None  # the fresh schedule continues the checkpoint's exactly
            if plan is not None:
                scheduler = Reannealed(optimizer, **plan)
        return {"scheduler": scheduler, "interval": self.interval.value, "frequency": self.frequency}

    def check(self, optimizer_steps: float | None, steps_per_epoch: int = 1) -> None:
        """Raise the ConfigError that `build` would raise for a run of this length, before the run starts."""
        self._sized(self.length(optimizer_steps, steps_per_epoch))

    def scheduler(self, optimizer: Optimizer, length: float | None) -> LRScheduler | None:
        """The torch scheduler sized to `length` scheduler steps, warm-up in front; None when there is neither."""
        lead, factory = self.warmup_steps, self._sized(length)
        main = None if factory is None else factory(optimizer)
        if main is not None:  # where it ends: a cosine's eta_min, a one-cycle's min_lr, else 0
            self.final_lrs = ([float(main.eta_min)] * len(optimizer.param_groups) if isinstance(main, CosineAnnealingLR)
                              else [float(group.get("min_lr", 0.0)) for group in optimizer.param_groups])
        if not lead:
            return main
        if self.warmup == Warmup.constant:
            warm = ConstantLR(optimizer, factor=self.warmup_lr_factor, total_iters=lead)
        else:
            warm = LinearLR(optimizer, start_factor=self.warmup_lr_factor, end_factor=1.0, total_iters=lead)
        return warm if main is None else SequentialLR(optimizer, [warm, main], milestones=[lead])

    def _sized(self, length: float | None) -> SchedulerFactory | None:
        """`lr_scheduler` with its run-length arguments filled in, its milestones checked and shifted behind
        the warm-up, and the warm-up checked against `length`."""
        lead, factory = self.warmup_steps, self.lr_scheduler
        unit = "optimizer steps" if self.interval == Interval.step else "epochs"
        unit = unit if self.frequency == 1 else f"scheduler steps (one every {self.frequency} {unit})"
        if length is not None and lead and lead >= length:
            raise ConfigError(f"scheduler.warmup_length={lead}: must be shorter than the run ({length} {unit})")
        if factory is None:
            return None
        keywords: dict[str, Any] = dict(getattr(factory, "keywords", {}) or {})
        check_run_length(keywords, length)
        for key in _null_lengths(keywords):
            factory = partial(factory, **{key: int(length) - lead})
        milestones = [int(m) for m in keywords.get("milestones") or []]
        if milestones and length is not None and max(milestones) >= length:
            raise ConfigError(f"scheduler.lr_scheduler.milestones={milestones}: beyond the end of the "
                              f"run ({length} {unit}); each must be below {length}")
        if milestones and lead and min(milestones) <= lead:
            raise ConfigError(f"scheduler.lr_scheduler.milestones={milestones}: must come after the "
                              f"warm-up (scheduler.warmup_length={lead})")
        if milestones and lead:  # SequentialLR restarts the main schedule at the end of the warm-up
            factory = partial(factory, milestones=[m - lead for m in milestones])
        return factory
