"""The PNG plots of a sweep report (README, "Sweeps and recipes"), their data from pure functions
(`depth_series`, `time_curves`) over the configurations of `stats.py`; drawn on matplotlib's Agg canvas
through `Figure` (no pyplot: no global backend state). A plot with no data is skipped.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnet_exp.io import write_atomic
from resnet_exp.report import ACCURACY_PNG, STEP_TIME_PNG, TIME_TO_ACCURACY_PNG
from resnet_exp.report.rows import finite
from resnet_exp.report.stats import Design, Estimate, Group, job_values, mean_interval

LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")  # with the line style, tells the depths apart


def depth_keys(groups: Sequence[Group], design: Design) -> list[str]:
    """The swept keys that set the depth (`arch.depth`, `arch=resnet20,resnet56`): among the
    configurations with a completed job, each value has one depth, and the values more than one."""
    found = []
    for i, key in enumerate(design.keys):
        depths: dict[str, set[int]] = {}
        for g in groups:
            if g.completed and g.depth() is not None:
                depths.setdefault(g.config[i], set()).add(g.depth())
        if depths and all(len(d) == 1 for d in depths.values()) and len(set().union(*depths.values())) > 1:
            found.append(key)
    return found


@dataclass
class DepthSeries:
    """{line label: [(depth, estimate over the completed jobs there), ...]}; `legend` names the keys."""

    legend: str
    lines: dict[str, list[tuple[int, Estimate]]]


def depth_series(rows: Sequence[Mapping[str, Any]], groups: Sequence[Group], design: Design,
                 row_key: str) -> DepthSeries:
    dkeys = depth_keys(groups, design)
    keys = [k for k in design.keys if k not in dkeys]
    several = len({r.get("data") for r in rows if r.get("data")}) > 1
    values: dict[str, dict[int, list[float]]] = {}
    for r in rows:
        if r["status"] != "completed" or r.get("depth") is None or finite(r.get(row_key)) is None:
            continue
        if keys:
            label = ", ".join(job_values(r).get(k, "") for k in keys)
        else:  # nothing but depth (and seed) swept: one line per block order, as the rows tell it
            label = str(r.get("block_order") or "?") + (f" / {r.get('data')}" if several else "")
        values.setdefault(label, {}).setdefault(int(r["depth"]), []).append(float(r[row_key]))
    lines = {label: sorted((d, mean_interval(v)) for d, v in by_depth.items()) for label, by_depth in values.items()}
    return DepthSeries(", ".join(keys) or "block order", lines)


@dataclass
class Curve:
    """One configuration's validation accuracy over training time: the mean over its n jobs at each
    validation they all reached, with the lowest and highest job there."""

    label: str
    n: int
    times: list[float]
    mean: list[float]
    low: list[float]
    high: list[float]
    colour_key: str
    style_key: str


def time_curves(groups: Sequence[Group], design: Design) -> list[Curve]:
    dkeys = depth_keys(groups, design)
    curves = []
    for group in groups:
        runs = [r["_time_to_accuracy"] for r in group.completed if r.get("_time_to_accuracy")]
        if not runs:
            continue
        at = [[run[i] for run in runs] for i in range(min(len(run) for run in runs))]
        values = dict(zip(design.keys, group.config))
        label = ", ".join(group.config) or ("the run" if len(runs) == 1 else f"all {len(runs)} runs")
        curves.append(Curve(
            label, len(runs), [statistics.fmean(p[0] for p in pts) for pts in at],
            [statistics.fmean(p[1] for p in pts) for pts in at], [min(p[1] for p in pts) for pts in at],
            [max(p[1] for p in pts) for pts in at],
            ", ".join(v for k, v in values.items() if k not in dkeys) or label,
            ", ".join(v for k, v in values.items() if k in dkeys)))
    return curves


# ---------------------------------------------------------------------------- drawing
def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    write_atomic(path, lambda handle: fig.savefig(handle, format="png"), binary=True)


def _with_seeds(series: Sequence[DepthSeries]) -> bool:
    return any(e.n > 1 for s in series for pts in s.lines.values() for _, e in pts)


def _draw_depth(ax: Any, series: DepthSeries, scale: float, ylabel: str) -> bool:
    """One panel; True when it has one depth only: then the lines stand side by side as labelled
    categories (no legend needed), since a depth axis with a single value says nothing."""
    depths = sorted({d for pts in series.lines.values() for d, _ in pts})
    bars = _with_seeds([series])
    single = len(depths) == 1
    step = 0.012 * ((depths[-1] - depths[0]) or 1.0) if bars else 0.0  # lines side by side: bars stay apart
    for i, (label, pts) in enumerate(series.lines.items()):
        shift = (i - (len(series.lines) - 1) / 2) * step
        xs = [i] * len(pts) if single else [d + shift for d, _ in pts]
        ys = [scale * e.mean for _, e in pts]
        if bars:
            ax.errorbar(xs, ys, yerr=[scale * (e.half_width or 0.0) for _, e in pts], color=f"C{i % 10}",
                        marker="o", markersize=4, capsize=3, label=label)
        else:
            ax.plot(xs, ys, color=f"C{i % 10}", marker="o", markersize=4, label=label)
    ax.set_ylabel(ylabel)
    if single:
        ax.set_xticks(range(len(series.lines)), list(series.lines))
        ax.set_xlim(-0.6, len(series.lines) - 0.4)
        ax.set_xlabel(series.legend)
    else:
        ax.set_xlabel("depth (layers)")
        if len(depths) <= 12:
            ax.set_xticks(depths)
    ax.grid(True, alpha=0.3)
    return single


def _plot_depth(path: Path, quantity: str, panels: Sequence[tuple[str, DepthSeries, float, str]]) -> bool:
    """panels: (panel title, series, scale, y label). False (nothing written) if there is nothing."""
    panels = [p for p in panels if p[1].lines]
    if not panels:
        return False
    from matplotlib.figure import Figure  # no pyplot: no global backend state, Agg canvas

    fig = Figure(figsize=(6.4 * len(panels) if len(panels) > 1 else 6.4, 4.4), dpi=110)
    for ax, (panel, series, scale, ylabel) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        if not _draw_depth(ax, series, scale, ylabel):
            ax.legend(title=series.legend, fontsize="small", title_fontsize="small")
        ax.set_title(panel)
    depths = {d for p in panels for pts in p[1].lines.values() for d, _ in pts}
    title = f"{quantity} at depth {depths.pop()}" if len(depths) == 1 else f"{quantity} vs depth"
    seeds = _with_seeds([p[1] for p in panels])
    fig.suptitle(title + ("\nmean over seeds, bars = 95% interval of the mean" if seeds else " (one run per point)"),
                 fontsize="medium")
    _save(fig, path)
    return True


def _plot_time_to_accuracy(path: Path, curves: Sequence[Curve], legend: str) -> bool:
    if not curves:
        return False
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.2, 4.6), dpi=110)
    ax = fig.add_subplot()
    colours = {key: f"C{i % 10}" for i, key in enumerate(dict.fromkeys(c.colour_key for c in curves))}
    styles = {key: (LINE_STYLES[i % len(LINE_STYLES)], MARKERS[i % len(MARKERS)])
              for i, key in enumerate(dict.fromkeys(c.style_key for c in curves))}
    seeds = any(c.n > 1 for c in curves)
    for c in curves:
        colour = colours[c.colour_key]
        style, marker = styles[c.style_key]
        ax.plot(c.times, [100 * v for v in c.mean], style, color=colour, marker=marker, markersize=4,
                label=(f"{c.label} (n={c.n})" if seeds else c.label)[:60])
        if c.n > 1:
            ax.fill_between(c.times, [100 * v for v in c.low], [100 * v for v in c.high], color=colour,
                            alpha=0.15, linewidth=0)
    ax.set_xlabel("training time (s, validation excluded)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("Time to accuracy" + (": mean over seeds, band = lowest to highest seed" if seeds else ""),
                 fontsize="medium")
    ax.grid(True, alpha=0.3)
    if 1 < len(curves) <= 12 or seeds:
        ax.legend(title=legend or None, fontsize="x-small", title_fontsize="x-small")
    _save(fig, path)
    return True


def write_plots(rows: Sequence[Mapping[str, Any]], groups: Sequence[Group], design: Design,
                sweep_dir: Path) -> tuple[list[Path], list[str]]:
    """(written files, names of plots skipped for lack of data)."""
    def series(row_key: str) -> DepthSeries:
        return depth_series(rows, groups, design, row_key)

    accuracy = [("Test accuracy", series("test_acc"), 100.0, "test accuracy (%)"),
                ("Best validation accuracy", series("val_acc_best"), 100.0, "best validation accuracy (%)")]
    steps = [("", series("step_median_ms"), 1.0, "ms per step")]
    plots = [(ACCURACY_PNG, lambda path: _plot_depth(path, "Accuracy", accuracy)),
             (STEP_TIME_PNG, lambda path: _plot_depth(path, "Median training step time", steps)),
             (TIME_TO_ACCURACY_PNG, lambda path: _plot_time_to_accuracy(
                 path, time_curves(groups, design), ", ".join(design.keys)))]
    written, skipped = [], []
    for name, draw in plots:
        if draw(sweep_dir / name):
            written.append(sweep_dir / name)
        else:
            skipped.append(name)
    return written, skipped
