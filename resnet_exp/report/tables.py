"""Tables of a sweep report: summary.csv and summary.md, one row per job (after a search, led by the trials of
the study.json its sweeper writes: no Optuna here), and the seed statistics of `stats.py` as groups.csv,
comparisons.csv (numbers as in summary.csv) and summary.md sections (accuracies in %, their differences in
percent points). `build_report` writes them all, and the plots."""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resnet_exp.errors import is_number
from resnet_exp.io import md_table, write_atomic, write_csv
from resnet_exp.report import COMPARISONS_CSV, GROUPS_CSV, SUMMARY_CSV, SUMMARY_MD, stats
from resnet_exp.report.rows import COLUMNS, load_json, read_sweep, sweep_axes
from resnet_exp.report.stats import ACCURACY_METRICS, CONFIDENCE, SEED_KEY, Design, Group, Pair
from resnet_exp.search import STUDY_FILE

MD_HEADERS = {**{c: c.replace("_", " ") for c in COLUMNS}, "val_acc_best": "best val acc %", "test_acc": "test acc %",
              "step_median_ms": "median step ms", "images_per_s": "images/s", "tflop_per_s": "TFLOP/s", "mfu": "MFU %"}
NUMERIC = ("depth", "params", "val_acc_best", "test_acc", "step_median_ms", "images_per_s", "tflop_per_s", "mfu",
           "wall_time_s")
# How summary.md shows a column's value (any other column: as it is). params is an int: results.json's
# type check leaves out any other value.
MD_CELLS: dict[str, Callable[[Any], str]] = {
    **dict.fromkeys(("val_acc_best", "test_acc"), lambda v: f"{100 * v:.2f}"),
    "selected_on": lambda v: "**test** †" if v == "test" else str(v),
    "params": lambda v: f"{v / 1e6:.2f}M" if v >= 1e5 else f"{v / 1e3:.1f}k" if v >= 1e3 else str(v),
    **dict.fromkeys(("step_median_ms", "wall_time_s"), lambda v: f"{v:.1f}" if v >= 100 else f"{v:.2f}"),
    "mfu": lambda v: f"{100 * v:.1f}", "tflop_per_s": lambda v: f"{v:.3g}",
    "images_per_s": lambda v: f"{v:.0f}" if v >= 100 else f"{v:.1f}", "overrides": lambda v: f"`{v}`"}
# Each metric of the statistics: its name in summary.md and the unit of its differences.
WORDS = {"test/acc": ("test acc", "points"), "val/acc_best": ("best val acc", "points"),
         "step_time/median_ms": ("median step ms", "ms"), "throughput/images_per_s": ("images/s", "images/s")}
MINUS = "\u2212"
PCT = round(100 * CONFIDENCE)


@dataclass
class Report:
    """What `build_report` read, computed and wrote."""

    sweep_dir: Path
    rows: list[dict[str, Any]]
    design: Design
    groups: list[Group]
    pairs: list[Pair]
    files: list[Path] = field(default_factory=list)
    skipped_plots: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r["status"] == status)


def count_statuses(statuses: Iterable[str]) -> str:
    """`2 completed, 1 failed`: each status with its count, by name."""
    return ", ".join(f"{n} {status}" for status, n in sorted(Counter(statuses).items()))


def _number(value: Any, digits: int) -> str:
    if not is_number(value) or not math.isfinite(value):
        return "" if value is None else str(value)
    return str(value) if isinstance(value, int) else f"{value:.{digits}g}"


def study_markdown(study: Mapping[str, Any], sweep_dir: Path) -> str:
    """The section: study name and storage, trial counts, the best trial, the table of trials."""
    trials = [t for t in study["trials"] if isinstance(t, Mapping)]
    metric, best = study.get("metric") or "value", study.get("best")
    keys = sorted({k for t in trials for k in (t.get("params") or {})})
    if isinstance(best, Mapping):
        params = " ".join(f"{k}={_number(v, 3)}" for k, v in (best.get("params") or {}).items())
        best_line = f"Best: trial {best.get('number')}, {metric} {_number(best.get('value'), 4)}, `{params}`"
    else:
        best_line = "Best: none yet (no complete trial)"
    here, table = sweep_dir.resolve(), []
    for t in sorted(trials, key=lambda t: t.get("number") if isinstance(t.get("number"), int) else -1):
        params, state, run_dir = t.get("params") or {}, str(t.get("state")), t.get("run_dir")
        if state == "pruned" and isinstance(t.get("pruned_at_epoch"), int):
            state += f" (epoch {t['pruned_at_epoch']})"
        # The trial's job folder: relative to this sweep, or the full path of another process's.
        path = Path(run_dir).resolve() if isinstance(run_dir, str) and run_dir else None
        job = "" if path is None else path.relative_to(here).as_posix() if path.is_relative_to(here) else os.fspath(path)
        table.append((t.get("number"), *(_number(params.get(k), 3) for k in keys), _number(t.get("value"), 4),
                      state, job))
    return (f"## Study `{study.get('study_name')}`: {study.get('direction')} {metric}\n\n"
            f"{len(trials)} trials: {count_statuses(str(t.get('state')) for t in trials)}; "
            f"storage `{study.get('storage')}`\n\n{best_line}\n\n"
            + md_table(["trial", *keys, metric, "state", "job"], "r" * (len(keys) + 2) + "ll", table))


def markdown(rows: Sequence[Mapping[str, Any]], sweep_dir: Path, axes: Sequence[str] = ()) -> str:
    """summary.md: a search's study, then a header (sweep axes, shared overrides) and one row per job."""
    lists = [r.get("_overrides") or [] for r in rows]
    common = [o for o in lists[0] if all(o in other for other in lists[1:])] if len(lists) > 1 else []
    # MFU only where some job has it (a GPU with a known peak); the error and selected-on columns
    # only if some job failed or was selected on the test split.
    optional = ("error", "mfu", "selected_on")
    columns = [c for c in COLUMNS if c not in optional or any(r.get(c) is not None for r in rows)]
    out = [f"# Sweep {sweep_dir.name}\n\n"]
    study = load_json(sweep_dir / STUDY_FILE)  # a search's
    if study is not None and isinstance(study.get("trials"), list):
        out.append(study_markdown(study, sweep_dir) + "\n## Jobs of this sweep\n\n")
    out.append(f"{len(rows)} jobs: {count_statuses(r['status'] for r in rows)}\n\n")
    if axes:
        out.append("Swept: " + ", ".join(f"`{a}`" for a in axes) + "\n\n")
    if common:
        out.append(f"Overrides of every job: `{' '.join(common)}`; the table shows the others.\n\n")
    shown = [dict(row, overrides=" ".join(o for o in own if o not in common)) for row, own in zip(rows, lists)]
    out.append(md_table([MD_HEADERS[c] for c in columns], "".join("r" if c in NUMERIC else "l" for c in columns),
                        (["" if r.get(c) in (None, "") else MD_CELLS.get(c, str)(r[c]) for c in columns] for r in shown)))
    if any(r.get("selected_on") == "test" for r in rows):
        out.append("\n† the best checkpoint was selected on the test split (data.val_on_test=true): "
                   "its test accuracy is optimistic, not a held-out figure.\n")
    return "".join(out)


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _fmt(metric: str, value: float, signed: bool = False, like: float | None = None) -> str:
    """In the metric's unit; the decimals follow `like` (the mean a half-width belongs to)."""
    scale = 100.0 if metric in ACCURACY_METRICS else 1.0
    big = metric == "throughput/images_per_s" and abs(scale * (value if like is None else like)) >= 100
    return f"{scale * value:{'+' if signed else ''}.{0 if big else 2}f}".replace("-", MINUS)


def statistics_markdown(report: Report, metrics: Sequence[tuple[str, str]]) -> str:
    """The "Groups" section (one row per configuration, each metric as mean ± CI half-width) and the
    "Comparisons" section; a note instead when every configuration ran once (nothing to take them over)."""
    groups, keys = report.groups, report.design.keys
    if not report.design.seeded and all(len(g.completed) < 2 for g in groups):
        return ("## Groups and comparisons\n\nNo `seed=` axis: every configuration ran once, so there are "
                "no intervals (groups.csv and comparisons.csv hold the single values). Add e.g. "
                "`seed=1,2,3` to the sweep for means with 95% intervals and tests of the differences.\n")
    left_out = [job for g in groups for job in g.left_out]
    columns = [*keys, "n", *(WORDS[name][0] + (" %" if name in ACCURACY_METRICS else "") for name, _ in metrics)]
    columns += ["left out"] if left_out else []
    table = []
    for group in groups:
        cells = [*group.config, str(len(group.completed))]
        for name, key in metrics:
            est = group.estimate(key)
            cell = "" if est.mean is None else _fmt(name, est.mean)
            cells.append(cell + ("" if est.half_width is None else f" ± {_fmt(name, est.half_width, like=est.mean)}"))
        table.append(cells + ([count_statuses(j["status"] for j in group.left_out)] if left_out else []))
    return (f"## Groups\n\nOne row per configuration (the jobs that differ only in `seed`): mean ± half-width "
            f"of the {PCT}% Student-t interval of the mean over its n completed jobs (no interval for n = 1); "
            "accuracies in %." + (f" Only completed jobs count: {len(left_out)} left out "
                                  f"({count_statuses(j['status'] for j in left_out)}), counted in the `left out` "
                                  "column." if left_out else "")
            + "\n\n" + md_table(columns, "l" * len(keys) + "r" * (len(columns) - len(keys)), table)
            + "\n" + comparisons_markdown(report.pairs))


def describe(pair: Pair) -> dict[str, str]:
    """A comparison in words: the other keys' values, the test, the difference with its interval and p,
    the reading, and all of it as a sentence (`arch.block_order: post − pre = −0.31 points of test acc
    at arch.depth=8 (95% CI −0.74 to +0.12, paired over 3 seeds, p = 0.21): the interval includes zero.`)."""
    r, (label, unit) = pair.result, WORDS[pair.metric]
    if r.excludes_zero is None:
        reading = "no interval (an arm has a single job)"
    else:
        higher = pair.a if r.diff_mean > 0 else pair.b
        reading = f"the interval excludes zero ({higher} higher)" if r.excludes_zero else "the interval includes zero"
    words = {"held": ", ".join(f"{k}={v}" for k, v in pair.held.items()), "diff": _fmt(pair.metric, r.diff_mean, True),
             "test": f"paired over {r.n} seed{'s' if r.n != 1 else ''}" if r.paired else f"Welch, {r.n_a} and {r.n_b} jobs",
             "interval": "" if r.low is None or r.high is None
             else f"{_fmt(pair.metric, r.low, True)} to {_fmt(pair.metric, r.high, True)}",
             "p": "" if r.p_value is None else f"{r.p_value:.2g}", "reading": reading}
    head = (f"{pair.key}: {pair.a} {MINUS} {pair.b} = {words['diff']} {unit} of {label}"
            + (f" at {words['held']}" if pair.held else ""))
    p = f", p = {words['p']}" if words["p"] else ""
    words["sentence"] = (f"{head} ({PCT}% CI {words['interval']}, {words['test']}{p}): {reading}."
                         if words["interval"] else f"{head} ({words['test']}): {reading}.")
    return words


def comparisons_markdown(pairs: Sequence[Pair]) -> str:
    """The accuracy comparisons as a table read in words, and a sentence for each one excluding zero."""
    shown = [(p, describe(p)) for p in pairs if p.metric in ACCURACY_METRICS]
    if not shown:
        return "## Comparisons\n\nNo swept key other than `seed` has two values with results on both sides: " \
               "nothing to compare.\n"
    excluding = [w["sentence"] for p, w in shown if p.result.excludes_zero]
    without = sum(1 for p, _ in shown if p.result.excludes_zero is None)
    table = [(p.key, f"{p.a} {MINUS} {p.b}", w["held"], WORDS[p.metric][0], w["test"], w["diff"], w["interval"],
              w["p"], w["reading"]) for p, w in shown]
    return (f"## Comparisons\n\na {MINUS} b for two values of one swept key, every other swept key held equal, "
            f"in percent points of accuracy, with the {PCT}% interval of the mean difference: paired over the "
            "seeds when both ran the same seeds, else Welch's t-test. Speed comparisons are in comparisons.csv.\n\n"
            + md_table(["key", f"a {MINUS} b", "held", "metric", "test", "difference", f"{PCT}% CI", "p", "reading"],
                       "lllllrrrl", table)
            + (f"\nDifferences whose {PCT}% interval excludes zero:\n\n" + "".join(f"- {s}\n" for s in excluding)
               if excluding else f"\nNo difference's {PCT}% interval excludes zero.\n")
            + f"\n{len(shown)} comparisons, {len(excluding)} excluding zero"
            + (f", {without} without an interval" if without else "")
            + f". The p-values are not corrected for multiple comparisons: at {PCT}%, about 1 in "
            f"{round(1 / (1 - CONFIDENCE))} intervals of equal arms excludes zero by chance.\n")


def write_statistics_csv(report: Report, metrics: Sequence[tuple[str, str]]) -> None:
    """groups.csv (one row per configuration) and comparisons.csv (one row per comparison)."""
    keys = report.design.keys
    stat_names = [f"{name}_{s}" for name, _ in metrics for s in ("mean", "sd", "ci_low", "ci_high")]
    estimates = [[g.estimate(key) for _, key in metrics] for g in report.groups]
    write_csv(report.sweep_dir / GROUPS_CSV, [*keys, "n", *stat_names, "seeds", "left_out"], [
        [*g.config, len(g.completed), *(_num(v) for e in group_estimates for v in (e.mean, e.sd, e.low, e.high)),
         " ".join(r["_values"][SEED_KEY] for r in g.completed if SEED_KEY in r["_values"]), len(g.left_out)]
        for g, group_estimates in zip(report.groups, estimates)], line_end="\n")
    header = ["key", "a", "b", *keys, "metric", "n", "paired", "diff_mean", "ci_low", "ci_high", "p_value", "n_a", "n_b"]
    write_csv(report.sweep_dir / COMPARISONS_CSV, header, [
        [p.key, p.a, p.b, *(p.held.get(k, "") for k in keys), p.metric, p.result.n, str(p.result.paired).lower(),
         *map(_num, (p.result.diff_mean, p.result.low, p.result.high, p.result.p_value)), p.result.n_a, p.result.n_b]
        for p in report.pairs], line_end="\n")


def build_report(sweep_dir: str | Path, plots: bool = True) -> Report:
    """Read the sweep; write summary.csv, summary.md, groups.csv, comparisons.csv and the plots with data."""
    sweep_dir = Path(sweep_dir)
    rows = read_sweep(sweep_dir)
    design = stats.design_of(rows, sweep_dir)
    groups = stats.group_rows(rows, design)
    metrics = stats.present_metrics(groups)
    report = Report(sweep_dir, rows, design, groups, stats.comparisons(groups, design, metrics))
    md = markdown(rows, sweep_dir, sweep_axes(sweep_dir)) + "\n" + statistics_markdown(report, metrics)
    write_csv(sweep_dir / SUMMARY_CSV, COLUMNS, ([r.get(c) for c in COLUMNS] for r in rows), line_end="\n")
    write_atomic(sweep_dir / SUMMARY_MD, lambda handle: handle.write(md))
    write_statistics_csv(report, metrics)
    report.files += [sweep_dir / name for name in (SUMMARY_CSV, SUMMARY_MD, GROUPS_CSV, COMPARISONS_CSV)]
    if plots:
        from resnet_exp.report.plots import write_plots  # matplotlib only when plotting

        written, report.skipped_plots = write_plots(rows, groups, design, sweep_dir)
        report.files += written
    return report


def log_wandb_table(report: Report, project: str, entity: str | None, group: str, tags: list[str] | None = None) -> str:
    """One extra wandb run in the sweep's group holding the summary table and plots (online); its URL."""
    import wandb

    run = wandb.init(project=project, entity=entity, group=group, tags=tags, job_type="sweep_report",
                     name=f"{group}-summary", dir=str(report.sweep_dir), mode="online", reinit="finish_previous")
    try:
        table = wandb.Table(columns=list(COLUMNS), data=[[row.get(c) for c in COLUMNS] for row in report.rows])
        images = {p.stem: wandb.Image(str(p)) for p in report.files if p.suffix == ".png"}
        run.log({"sweep_summary": table, **images})
    finally:
        run.finish()
    return run.url
