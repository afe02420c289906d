"""Seed statistics of a sweep (scipy.stats): configurations (the jobs that differ only in `seed`), each
metric's mean with a 95% Student-t interval, and comparisons of two values of one swept key with the others
held equal. Only completed jobs count; the others are `left_out`."""

from __future__ import annotations

import itertools
import statistics
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resnet_exp.report.rows import finite, is_sweep, sweep_axes

SEED_KEY = "seed"
CONFIDENCE = 0.95
# (metric name as in results.json, the row's key): accuracies, then speed where a job measured it.
METRICS = (("test/acc", "test_acc"), ("val/acc_best", "val_acc_best"),
           ("step_time/median_ms", "step_median_ms"), ("throughput/images_per_s", "images_per_s"))
ACCURACY_METRICS = ("test/acc", "val/acc_best")


@dataclass(frozen=True)
class Estimate:
    """The mean of n values with its sample sd and t interval (None where n is too small)."""

    n: int
    mean: float | None
    sd: float | None = None
    low: float | None = None
    high: float | None = None

    @property
    def half_width(self) -> float | None:
        return None if self.low is None or self.high is None else (self.high - self.low) / 2


def _ttest(test: str, *args: Any, confidence: float, **kwargs: Any) -> tuple[Any, Any]:
    """(result, interval) of the t-test `scipy.stats.<test>`. Samples without spread are legitimate: scipy
    warns and answers inf or NaN (None in the report)."""
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = getattr(stats, test)(*args, **kwargs)
        return result, result.confidence_interval(confidence)


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Estimate:
    """Mean, sd (n - 1) and the Student-t interval of the mean (scipy's one-sample t-test)."""
    if len(values) < 2:
        return Estimate(len(values), statistics.fmean(values) if values else None)
    _, interval = _ttest("ttest_1samp", values, 0.0, confidence=confidence)
    return Estimate(len(values), statistics.fmean(values), statistics.stdev(values),
                    float(interval.low), float(interval.high))


@dataclass(frozen=True)
class Comparison:
    """a - b: the mean difference, its interval and two-sided p (None where an arm is too small)."""

    paired: bool
    n: int  # seed pairs when paired, else the jobs of both arms
    n_a: int
    n_b: int
    diff_mean: float
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    df: float | None = None

    @property
    def excludes_zero(self) -> bool | None:
        return None if self.low is None or self.high is None else self.low > 0 or self.high < 0


def compare(a: Sequence[tuple[Any, float]], b: Sequence[tuple[Any, float]],
            confidence: float = CONFIDENCE) -> Comparison:
    """Compare arms of (seed, value): paired t-test over the seeds when both arms ran exactly the
    same seeds (each once), else Welch's t-test (Welch–Satterthwaite degrees of freedom)."""
    seeds_a, by_seed = [s for s, _ in a], dict(b)
    paired = None not in seeds_a and len(set(seeds_a)) == len(a) == len(b) and set(seeds_a) == set(by_seed)
    xs = [v for _, v in a]
    ys = [by_seed[s] for s in seeds_a] if paired else [v for _, v in b]
    diff = statistics.fmean(x - y for x, y in zip(xs, ys)) if paired else statistics.fmean(xs) - statistics.fmean(ys)
    n = len(xs) if paired else len(xs) + len(ys)
    if len(xs) < 2 or len(ys) < 2:
        return Comparison(paired, n, len(xs), len(ys), diff)
    result, interval = (_ttest("ttest_rel", xs, ys, confidence=confidence) if paired
                        else _ttest("ttest_ind", xs, ys, confidence=confidence, equal_var=False))
    return Comparison(paired, n, len(xs), len(ys), diff, finite(float(interval.low)), finite(float(interval.high)),
                      finite(float(result.pvalue)), float(result.df))


@dataclass
class Design:
    """A sweep's non-seed swept keys (typed order), each key's values (run order), and whether it swept `seed`."""

    keys: list[str]
    values: dict[str, list[str]]
    seeded: bool


def design_of(rows: Sequence[Mapping[str, Any]], sweep_dir: Path | None = None) -> Design:
    """From multirun.yaml's sweep axes (a recipe's axis that the command line set to one value is
    none); a folder without them: the keys whose values differ between jobs (or that some job lacks)."""
    axes = sweep_axes(sweep_dir) if sweep_dir is not None else []
    keys = [axis.lstrip("+~").partition("=")[0] for axis in axes if is_sweep(axis)]
    per_job = [r["_values"] for r in rows]
    if not keys:
        keys = [k for k in dict.fromkeys(k for job in per_job for k in job) if len({j.get(k) for j in per_job}) > 1]
    plain = [k for k in keys if k != SEED_KEY]
    return Design(plain, {k: list(dict.fromkeys(job[k] for job in per_job if k in job)) for k in plain},
                  SEED_KEY in keys)


@dataclass
class Group:
    """One configuration: its values of the design's keys, and its jobs."""

    config: tuple[str, ...]
    jobs: list[Mapping[str, Any]] = field(default_factory=list)

    @property
    def completed(self) -> list[Mapping[str, Any]]:
        return [r for r in self.jobs if r["status"] == "completed"]

    @property
    def left_out(self) -> list[Mapping[str, Any]]:
        return [r for r in self.jobs if r["status"] != "completed"]

    def values(self, row_key: str) -> list[tuple[str | None, float]]:
        """(seed, value) of every completed job that has the metric."""
        return [(r["_values"].get(SEED_KEY), float(r[row_key])) for r in self.completed
                if finite(r.get(row_key)) is not None]

    def estimate(self, row_key: str) -> Estimate:
        return mean_interval([v for _, v in self.values(row_key)])


def group_rows(rows: Sequence[Mapping[str, Any]], design: Design) -> list[Group]:
    """The configurations in the order their first job ran."""
    groups: dict[tuple[str, ...], Group] = {}
    for row in rows:
        config = tuple(row["_values"].get(k, "") for k in design.keys)
        groups.setdefault(config, Group(config)).jobs.append(row)
    return list(groups.values())


def present_metrics(groups: Sequence[Group]) -> list[tuple[str, str]]:
    """The METRICS some completed job reported."""
    return [(name, key) for name, key in METRICS if any(g.values(key) for g in groups)]


@dataclass(frozen=True)
class Pair:
    """One comparison: key's value a against b, the other keys held at `held`, on one metric."""

    key: str
    a: str
    b: str
    held: dict[str, str]
    metric: str
    result: Comparison


def comparisons(groups: Sequence[Group], design: Design, metrics: Sequence[tuple[str, str]]) -> list[Pair]:
    """Each pair of values (typed order) of each key, at every setting of the others where both arms have the
    metric; diff = a - b."""
    by_config = {g.config: g for g in groups}
    pairs = []
    for i, key in enumerate(design.keys):
        others = design.keys[:i] + design.keys[i + 1:]
        held_settings = list(dict.fromkeys(g.config[:i] + g.config[i + 1:] for g in groups))
        for (a, b), held in itertools.product(itertools.combinations(design.values[key], 2), held_settings):
            arm_a, arm_b = (by_config.get(held[:i] + (value,) + held[i:]) for value in (a, b))
            if arm_a is None or arm_b is None:
                continue
            for name, row_key in metrics:
                va, vb = arm_a.values(row_key), arm_b.values(row_key)
                if va and vb:
                    pairs.append(Pair(key, a, b, dict(zip(others, held)), name, compare(va, vb)))
    return pairs
