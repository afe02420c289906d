"""How much a run trains, validates and tests: the trainer's batch limits and time limit.

Lightning reads `limit_{train,val,test}_batches` as a whole number of batches (an int, or a float
such as 2.0) or as a fraction of the loader (a float in [0, 1]), so `1` is one batch and `1.0` all
of them. A limit that runs nothing is refused here, before a run folder exists:
- `limit_train_batches=0` (0 steps, or a scheduler sized to an empty run) and
  `limit_test_batches=0` (nothing to put in results.json) are refused;
- `limit_val_batches=0` means no validation: the last weights are tested, `selected_on` is null;
- a fraction that leaves less than one batch of the actual data is refused once the data is known
  (`limited_batches`, called while the run is built), naming the smallest fraction that works.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from resnet_exp.errors import ConfigError, require

BATCH_LIMITS = {"limit_train_batches": "train nothing", "limit_val_batches": None,
                "limit_test_batches": "test nothing (a run ends with its test)"}
SPLIT_OF_LIMIT = {"limit_train_batches": "training", "limit_val_batches": "validation",
                  "limit_test_batches": "test"}
ALLOWED = "must be a whole number of batches (>= 1) or a fraction of them in (0.0, 1.0]"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_batch_limit(key: str, value: Any) -> None:
    """One `limit_*_batches` value (None: all batches); `key` without the `trainer.` group."""
    if value is None:
        return
    zero_means = BATCH_LIMITS[key]
    allowed = ALLOWED if zero_means else f"{ALLOWED}, or 0 for no validation"
    require(_is_number(value), key, value, allowed)
    whole = value == int(value) if math.isfinite(value) else False
    fraction = isinstance(value, float) and 0 < value <= 1
    require(value >= 0 and (whole or fraction), key, value, allowed)
    if value == 0 and zero_means:
        raise ConfigError(f"{key}={value}: {allowed}; 0 would {zero_means}")


def check_positive_interval(key: str, value: Any) -> None:
    """`val_check_interval` / `check_val_every_n_epoch`: a number of them must be above 0
    (Lightning divides by it); None and Lightning's time strings are left to Lightning."""
    if _is_number(value):
        require(value > 0, key, value, "must be > 0 (or null)")


def check_max_time(value: Any) -> None:
    """`max_time` as Lightning takes it ("DD:HH:MM:SS" or a dict of timedelta keys) must be longer than 0."""
    if isinstance(value, str) and all(part.strip().isdigit() for part in value.split(":")):
        total = sum(int(part) for part in value.split(":"))
    elif isinstance(value, Mapping) and all(_is_number(v) for v in value.values()):
        total = sum(value.values())
    else:
        return  # None, or a form Lightning checks itself
    require(total > 0, "max_time", value, "must be longer than 0 (DD:HH:MM:SS); null for no time limit")


def limited_batches(key: str, limit: Any, available: int) -> int:
    """The batches Lightning runs of a loader with `available` of them under `trainer.<key>=limit`;
    a fraction that leaves none is a one-line ConfigError naming the smallest that works."""
    if limit is None or available == 0:
        return available
    if isinstance(limit, float) and limit <= 1:
        batches = int(available * limit)
        if batches == 0 and limit > 0:
            least = math.ceil(1000 / available) / 1000
            raise ConfigError(f"trainer.{key}={limit}: less than one of the {available} {SPLIT_OF_LIMIT[key]} "
                              f"batches; use at least trainer.{key}={least:g}, or a number of batches "
                              f"such as trainer.{key}=1")
        return batches
    return min(available, int(limit))


def check_run_lengths(limits: Mapping[str, Any], available: Mapping[str, int], max_epochs: int, max_steps: int,
                      accumulate: int, schedule: Any | None) -> None:
    """Before the run starts, with the data known: every split in `available` (batches per epoch
    and process, by limit key) runs at least one batch, and the schedule (`Schedule.check`) fits the
    run's optimizer steps, counted as `trainer.estimated_stepping_batches` counts them."""
    batches = {key: limited_batches(key, limits.get(key), count) for key, count in available.items()}
    if schedule is None or "limit_train_batches" not in batches:
        return
    per_epoch = math.ceil(batches["limit_train_batches"] / accumulate)
    if max_epochs == -1:
        total: float = math.inf if max_steps == -1 else max_steps
    else:
        total = per_epoch * max(max_epochs, 1)
        total = min(total, max_steps) if max_steps != -1 else total
    schedule.check(total, per_epoch)
