"""Hydra's sweep syntax as an Optuna search space: `interval()` and `tag(log, interval())` are float ranges,
`range()` an integer one when its ends and step are (its stop excluded, as in Hydra), `choice()`, `a,b` and
`shuffle()` choices; every other override is fixed. And a trial's parameters as job overrides."""

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

SYNTAX = "use interval(), tag(log, interval()), choice(), range() or a,b"


@dataclass
class SearchSpace:
    """Distributions by config key, each key as typed (`+key` adds it), and the overrides every job gets."""

    fixed: list[str] = field(default_factory=list)
    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    elements: dict[str, str] = field(default_factory=dict)

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """The overrides of a job whose trial chose `params`."""
        return [*self.fixed, *(f"{self.elements[k]}={override_value(v)}" for k, v in params.items())]


def override_value(value: Any) -> str:
    """A parameter value as Hydra reads it back: floats exact, booleans and None in Hydra's words."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return repr(value) if isinstance(value, float) else str(value)


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override; UserError naming it if Optuna cannot take it."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    typed = override.input_line or f"{override.get_key_element()}={override.get_value_element_as_str()}"
    value = override.value()
    try:
        if override.value_type == ValueType.GLOB_CHOICE_SWEEP:
            raise UserError(f"{typed}: glob() cannot be searched; {SYNTAX}")
        if override.is_choice_sweep() or (isinstance(value, RangeSweep) and value.shuffle):
            return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
        if isinstance(value, RangeSweep):
            values = list(override.sweep_iterator())
            if not values:
                raise UserError(f"{typed}: the range is empty; write range(start, stop[, step]) with start < stop")
            log = "log" in value.tags
            if all(isinstance(v, int) and not isinstance(v, bool) for v in (value.start, value.step)):
                return IntDistribution(int(values[0]), int(values[-1]), step=int(value.step), log=log)
            if log:
                raise UserError(f"{typed}: a log scale takes no step; write tag(log, interval(low, high))")
            return FloatDistribution(float(values[0]), float(values[0]) + value.step * (len(values) - 1),
                                     step=float(value.step))
        if isinstance(value, IntervalSweep):
            low, high, log = float(value.start), float(value.end), "log" in value.tags
            if not (math.isfinite(low) and math.isfinite(high)) or low > high:
                raise UserError(f"{typed}: the low end is above the high end; write interval(low, high)")
            if log and low <= 0:
                raise UserError(f"{typed}: a log scale needs a low end above 0")
            return FloatDistribution(low, high, log=log)
    except ValueError as exc:  # Optuna's own checks of the numbers
        raise UserError(f"{typed}: {first_line(str(exc))}") from None
    raise UserError(f"{typed}: cannot be searched; {SYNTAX}")


def search_space(params: Mapping[str, Any] | None, arguments: Sequence[str]) -> SearchSpace:
    """`hydra.sweeper.params`, then the command line (which wins): sweep overrides are searched, the others fixed."""
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
        else:
            fixed[key] = f"{override.get_key_element()}={override.get_value_element_as_str()}"
    space.fixed = list(fixed.values())
    return space


def probe_jobs(space: SearchSpace) -> list[list[str]]:
    """Jobs trying every choice and both ends of every range, one key at a time (the others at their first value)."""
    values = {k: list(d.choices) if hasattr(d, "choices") else sorted({d.low, d.high})
              for k, d in space.distributions.items()}
    base = {k: v[0] for k, v in values.items()}
    return [space.overrides(base), *(space.overrides({**base, k: v}) for k, vs in values.items() for v in vs[1:])]
