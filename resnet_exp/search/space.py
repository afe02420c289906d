"""Hydra's sweep syntax as an Optuna search space, and a trial's parameters as job overrides.

    optimizer.lr: tag(log, interval(1e-4, 1.0))   -> FloatDistribution(1e-4, 1.0, log=True)
    optimizer.weight_decay: interval(0, 1e-3)     -> FloatDistribution(0, 1e-3)
    arch.block_order: choice(post, pre)           -> CategoricalDistribution(["post", "pre"])
    data.batch_size: range(32, 257, 32)           -> IntDistribution(32, 256, step=32)
    trainer.max_epochs: 4,8                       -> CategoricalDistribution([4, 8])

The same keys as Hydra's Optuna sweeper plugin. `interval` is always a float range (Hydra reads its
ends as floats); `range` gives integers when its ends and step are integers, and excludes its stop
as Hydra's `range` does; `shuffle(...)` makes a choice. Every other override is fixed: each job gets it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer, ValueType

from resnet_exp.errors import UserError, first_line

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution


@dataclass
class SearchSpace:
    """What a search varies and what every one of its jobs shares."""

    fixed: list[str] = field(default_factory=list)            # overrides of every job, as typed
    distributions: dict[str, BaseDistribution] = field(default_factory=dict)  # by config key
    elements: dict[str, str] = field(default_factory=dict)     # key -> as typed (`+key` adds it)
    typed: dict[str, str] = field(default_factory=dict)        # key -> the override, for messages

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """The overrides of a job whose trial chose `params`."""
        return [*self.fixed, *(f"{self.elements[k]}={override_value(v)}" for k, v in params.items())]


def override_value(value: Any) -> str:
    """A parameter value as Hydra reads it back: floats exact, booleans and None in Hydra's words."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _problem(typed: str, what: str) -> UserError:
    return UserError(f"{typed}: {what}")


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override; UserError naming it if Optuna cannot take it."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    typed = override.input_line or f"{override.get_key_element()}={override.get_value_element_as_str()}"
    value = override.value()
    try:
        if override.value_type == ValueType.GLOB_CHOICE_SWEEP:
            raise _problem(typed, "glob() cannot be searched; use interval(), tag(log, interval()), choice(), "
                                  "range() or a,b")
        if override.is_choice_sweep() or (isinstance(value, RangeSweep) and value.shuffle):
            return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
        if isinstance(value, RangeSweep):
            values = list(override.sweep_iterator())
            if not values:
                raise _problem(typed, "the range is empty; write range(start, stop[, step]) with start < stop")
            log = "log" in value.tags
            if all(isinstance(v, int) and not isinstance(v, bool) for v in (value.start, value.step)):
                return IntDistribution(int(values[0]), int(values[-1]), step=int(value.step), log=log)
            if log:
                raise _problem(typed, "a log scale takes no step; write tag(log, interval(low, high))")
            return FloatDistribution(float(values[0]), float(values[0]) + value.step * (len(values) - 1),
                                     step=float(value.step))
        if isinstance(value, IntervalSweep):
            low, high, log = float(value.start), float(value.end), "log" in value.tags
            if not (math.isfinite(low) and math.isfinite(high)) or low > high:
                raise _problem(typed, "the low end is above the high end; write interval(low, high)")
            if log and low <= 0:
                raise _problem(typed, "a log scale needs a low end above 0")
            return FloatDistribution(low, high, log=log)
    except ValueError as exc:  # Optuna's own checks of the numbers
        raise _problem(typed, first_line(str(exc))) from None
    raise _problem(typed, "cannot be searched; use interval(), tag(log, interval()), choice(), range() or a,b")


def search_space(params: Mapping[str, Any] | None, arguments: Sequence[str]) -> SearchSpace:
    """The config's `hydra.sweeper.params`, then the command line's overrides (a key given in both
    takes the command line's): sweep overrides are searched, the others fixed."""
    lines = [f"{k}={v}" for k, v in (params or {}).items()] + list(arguments)
    space = SearchSpace()
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(lines):
        key = override.key_or_group
        fixed.pop(key, None)
        space.distributions.pop(key, None)
        if override.is_sweep_override():
            space.distributions[key] = distribution(override)
            space.elements[key] = override.get_key_element()
            space.typed[key] = override.input_line or key
        else:
            fixed[key] = f"{override.get_key_element()}={override.get_value_element_as_str()}"
    space.fixed = list(fixed.values())
    return space


def probe_values(dist: BaseDistribution) -> list[Any]:
    """Values that stand for a distribution when checking configs: every choice, or both ends."""
    choices = getattr(dist, "choices", None)
    if choices is not None:
        return list(choices)
    return [dist.low, dist.high] if dist.low != dist.high else [dist.low]


def probe_jobs(space: SearchSpace) -> list[list[str]]:
    """Job overrides that try every choice and both ends of every range, one key at a time (the
    others at their first value): what can be checked of a search before it starts."""
    values = {k: probe_values(d) for k, d in space.distributions.items()}
    base = {k: v[0] for k, v in values.items()}
    jobs = [space.overrides(base)]
    for key, candidates in values.items():
        jobs += [space.overrides({**base, key: v}) for v in candidates[1:]]
    return jobs
