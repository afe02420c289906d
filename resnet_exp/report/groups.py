"""groups.csv, comparisons.csv (numbers as in summary.csv) and their summary.md sections (accuracies in %,
their differences in percent points): the seed statistics of `stats.py`."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from resnet_exp.report.rows import count_statuses, md_row, write_csv
from resnet_exp.report.stats import ACCURACY_METRICS, CONFIDENCE, Design, Group, Pair

LABELS = {"test/acc": "test acc", "val/acc_best": "best val acc", "step_time/median_ms": "median step ms",
          "throughput/images_per_s": "images/s"}
UNITS = {"test/acc": "points", "val/acc_best": "points", "step_time/median_ms": "ms",
         "throughput/images_per_s": "images/s"}
MINUS = "\u2212"
PCT = round(100 * CONFIDENCE)


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def write_groups_csv(path: Path, groups: Sequence[Group], design: Design, metrics: Sequence[tuple[str, str]]) -> None:
    header = [*design.keys, "n"]
    for name, _ in metrics:
        header += [f"{name}_mean", f"{name}_sd", f"{name}_ci_low", f"{name}_ci_high"]
    rows = []
    for group in groups:
        row: list[Any] = [*group.config, len(group.completed)]
        for _, key in metrics:
            est = group.estimate(key)
            row += [_num(est.mean), _num(est.sd), _num(est.low), _num(est.high)]
        rows.append(row + [" ".join(str(s) for s in group.seeds if s is not None), len(group.left_out)])
    write_csv(path, header + ["seeds", "left_out"], rows)


def write_comparisons_csv(path: Path, pairs: Sequence[Pair], design: Design) -> None:
    header = ["key", "a", "b", *design.keys, "metric", "n", "paired", "diff_mean", "ci_low", "ci_high",
              "p_value", "n_a", "n_b"]
    write_csv(path, header, [[p.key, p.a, p.b, *(p.held.get(k, "") for k in design.keys), p.metric, p.result.n,
                              "true" if p.result.paired else "false", _num(p.result.diff_mean), _num(p.result.low),
                              _num(p.result.high), _num(p.result.p_value), p.result.n_a, p.result.n_b]
                             for p in pairs])


# ---------------------------------------------------------------------------- summary.md
def _fmt(metric: str, value: float, signed: bool = False, like: float | None = None) -> str:
    """In the metric's unit; the decimals follow `like` (the mean a half-width belongs to)."""
    scale = 100.0 if metric in ACCURACY_METRICS else 1.0
    big = metric == "throughput/images_per_s" and abs(scale * (value if like is None else like)) >= 100
    digits = 0 if big else 2
    text = f"{scale * value:+.{digits}f}" if signed else f"{scale * value:.{digits}f}"
    return text.replace("-", MINUS)


def shows_statistics(groups: Sequence[Group], design: Design) -> bool:
    """summary.md gets the tables when the sweep has seeds (or repeats) to take statistics over."""
    return design.seeded or any(len(g.completed) >= 2 for g in groups)


def groups_markdown(groups: Sequence[Group], design: Design, metrics: Sequence[tuple[str, str]]) -> str:
    """The "Groups" section: one row per configuration, each metric as mean ± CI half-width."""
    if not shows_statistics(groups, design):
        return ("## Groups and comparisons\n\nNo `seed=` axis: every configuration ran once, so there are "
                "no intervals (groups.csv and comparisons.csv hold the single values). Add e.g. "
                "`seed=1,2,3` to the sweep for means with 95% intervals and tests of the differences.\n")
    out = io.StringIO()
    out.write(f"## Groups\n\nOne row per configuration (the jobs that differ only in `seed`): mean ± half-width "
              f"of the {PCT}% Student-t interval of the mean over its n completed jobs (no interval for "
              "n = 1); accuracies in %.")
    left_out = [job for g in groups for job in g.left_out]
    if left_out:
        out.write(f" Only completed jobs count: {len(left_out)} left out "
                  f"({count_statuses(j['status'] for j in left_out)}), counted in the `left out` column.")
    columns = [*design.keys, "n", *(LABELS[name] + (" %" if name in ACCURACY_METRICS else "") for name, _ in metrics)]
    columns += ["left out"] if left_out else []
    out.write("\n\n" + md_row(columns))
    out.write("|" + "|".join("---" if i < len(design.keys) else "---:" for i in range(len(columns))) + "|\n")
    for group in groups:
        cells = [*group.config, str(len(group.completed))]
        for name, key in metrics:
            est = group.estimate(key)
            cell = "" if est.mean is None else _fmt(name, est.mean)
            cells.append(cell + ("" if est.half_width is None else f" ± {_fmt(name, est.half_width, like=est.mean)}"))
        cells += [count_statuses(j["status"] for j in group.left_out)] if left_out else []
        out.write(md_row(cells))
    return out.getvalue()


def _where(pair: Pair) -> str:
    return ", ".join(f"{k}={v}" for k, v in pair.held.items())


def _test(pair: Pair) -> str:
    r = pair.result
    return f"paired over {r.n} seed{'s' if r.n != 1 else ''}" if r.paired else f"Welch, {r.n_a} and {r.n_b} jobs"


def _interval(pair: Pair) -> str:
    low, high = pair.result.low, pair.result.high
    return "" if low is None or high is None else f"{_fmt(pair.metric, low, True)} to {_fmt(pair.metric, high, True)}"


def reading(pair: Pair) -> str:
    """In words: whether the interval of a - b excludes zero, and which side is higher."""
    r = pair.result
    if r.excludes_zero is None:
        return "no interval (an arm has a single job)"
    if not r.excludes_zero:
        return "the interval includes zero"
    return f"the interval excludes zero ({pair.a if r.diff_mean > 0 else pair.b} higher)"


def sentence(pair: Pair) -> str:
    """`arch.block_order: post − pre = −0.31 points of test acc at arch.depth=8 (95% CI −0.74 to
    +0.12, paired over 3 seeds, p = 0.21): the interval includes zero.`"""
    r = pair.result
    where = f" at {_where(pair)}" if pair.held else ""
    head = (f"{pair.key}: {pair.a} {MINUS} {pair.b} = {_fmt(pair.metric, r.diff_mean, True)} "
            f"{UNITS[pair.metric]} of {LABELS[pair.metric]}{where}")
    if r.low is None or r.high is None:
        return f"{head} ({_test(pair)}): {reading(pair)}."
    p = "" if r.p_value is None else f", p = {r.p_value:.2g}"
    return f"{head} ({PCT}% CI {_interval(pair)}, {_test(pair)}{p}): {reading(pair)}."


def comparisons_markdown(pairs: Sequence[Pair], groups: Sequence[Group], design: Design) -> str:
    """The "Comparisons" section: the accuracy comparisons as a table with a reading in words, then
    a sentence for each difference whose interval excludes zero."""
    if not shows_statistics(groups, design):
        return ""
    shown = [p for p in pairs if p.metric in ACCURACY_METRICS]
    if not shown:
        return "## Comparisons\n\nNo swept key other than `seed` has two values with results on both sides: " \
               "nothing to compare.\n"
    out = io.StringIO()
    out.write(f"## Comparisons\n\na {MINUS} b for two values of one swept key, every other swept key held equal, "
              f"in percent points of accuracy, with the {PCT}% interval of the mean difference: paired over the "
              "seeds when both ran the same seeds, else Welch's t-test. Speed comparisons are in comparisons.csv.\n\n")
    out.write(f"| key | a {MINUS} b | held | metric | test | difference | {PCT}% CI | p | reading |\n")
    out.write("|---|---|---|---|---|---:|---:|---:|---|\n")
    for p in shown:
        r = p.result
        out.write(md_row((
            p.key, f"{p.a} {MINUS} {p.b}", _where(p), LABELS[p.metric], _test(p), _fmt(p.metric, r.diff_mean, True),
            _interval(p), "" if r.p_value is None else f"{r.p_value:.2g}", reading(p))))
    excluding = [p for p in shown if p.result.excludes_zero]
    without = sum(1 for p in shown if p.result.excludes_zero is None)
    if excluding:
        out.write(f"\nDifferences whose {PCT}% interval excludes zero:\n\n")
        out.writelines(f"- {sentence(p)}\n" for p in excluding)
    else:
        out.write(f"\nNo difference's {PCT}% interval excludes zero.\n")
    out.write(f"\n{len(shown)} comparisons, {len(excluding)} excluding zero"
              + (f", {without} without an interval" if without else "")
              + f". The p-values are not corrected for multiple comparisons: at {PCT}%, about 1 in "
              f"{round(1 / (1 - CONFIDENCE))} intervals of equal arms excludes zero by chance.\n")
    return out.getvalue()
