"""The trainer's batch and time limits. Lightning reads `limit_*_batches` as a whole number of batches (an int,
or a float such as 2.0) or as a fraction of the loader (a float in [0, 1]): `1` is one batch, `1.0` all of them.
A limit that trains or tests nothing, or a fraction that leaves no batch of the data, is refused before the run."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from resnet_exp.errors import ConfigError, is_number, require

# What 0 would do (None: 0 is allowed), and the split, by limit key.
BATCH_LIMITS = {"limit_train_batches": "train nothing", "limit_val_batches": None,
                "limit_test_batches": "test nothing (a run ends with its test)"}
SPLIT_OF_LIMIT = {"limit_train_batches": "training", "limit_val_batches": "validation", "limit_test_batches": "test"}
ALLOWED = "must be a whole number of batches (>= 1) or a fraction of them in (0.0, 1.0]"


def check_batch_limit(key: str, value: Any) -> None:
    """One `limit_*_batches` value (None: all batches); `key` without the `trainer.` group."""
    if value is None:
        return
    zero_means = BATCH_LIMITS[key]
    allowed = ALLOWED if zero_means else f"{ALLOWED}, or 0 for no validation"
    require(is_number(value), key, value, allowed)
    whole = value == int(value) if math.isfinite(value) else False
    fraction = isinstance(value, float) and 0 < value <= 1
    require(value >= 0 and (whole or fraction), key, value, allowed)
    if value == 0 and zero_means:
        raise ConfigError(f"{key}={value}: {allowed}; 0 would {zero_means}")


def check_positive_interval(key: str, value: Any) -> None:
    """`val_check_interval` / `check_val_every_n_epoch`: a number must be > 0 (Lightning divides by it)."""
    if is_number(value):
        require(value > 0, key, value, "must be > 0 (or null)")


def check_max_time(value: Any) -> None:
    """`max_time` as Lightning takes it ("DD:HH:MM:SS" or a dict of timedelta keys) must be longer than 0."""
    if isinstance(value, str) and all(part.strip().isdigit() for part in value.split(":")):
        total = sum(int(part) for part in value.split(":"))
    elif isinstance(value, Mapping) and all(is_number(v) for v in value.values()):
        total = sum(value.values())
    else:
        return  # None, or a form Lightning checks itself
    require(total > 0, "max_time", value, "must be longer than 0 (DD:HH:MM:SS); null for no time limit")


def limited_batches(key: str, limit: Any, available: int) -> int:
    """The batches Lightning runs of a loader with `available` of them under `trainer.<key>=limit`; a
    fraction that leaves none is a one-line ConfigError naming the smallest that works."""
    if limit is None or available == 0:
        return available
    if isinstance(limit, float) and limit <= 1:
        batches = int(available * limit)
        if batches == 0 and limit > 0:
            least = math.ceil(1000 / available) / 1000
            raise ConfigError(f"trainer.{key}={limit}: less than one of the {available} {SPLIT_OF_LIMIT[key]} batches; "
                              f"use at least trainer.{key}={least:g}, or a number of batches such as trainer.{key}=1")
        return batches
    return min(available, int(limit))


def check_run_lengths(limits: Mapping[str, Any], available: Mapping[str, int], max_epochs: int, max_steps: int,
                      accumulate: int, schedule: Any | None) -> None:
    """With the data known: every split in `available` (batches per epoch and process, by limit key) runs a
    batch, and the schedule fits the run's optimizer steps (as `trainer.estimated_stepping_batches` counts)."""
    batches = {key: limited_batches(key, limits.get(key), count) for key, count in available.items()}
    if schedule is None or "limit_train_batches" not in batches:
        return
    per_epoch = math.ceil(batches["limit_train_batches"] / accumulate)
    epochs_total = math.inf if max_epochs == -1 else per_epoch * max(max_epochs, 1)
    schedule.check(min(epochs_total, math.inf if max_steps == -1 else max_steps), per_epoch)
