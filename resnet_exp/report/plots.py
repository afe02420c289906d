"""The PNG plots of a sweep report (README, "Sweeps and recipes"), their data from pure functions
(`depth_series`, `time_curves`) over the configurations of `stats.py`; drawn on matplotlib's Agg canvas
through `Figure` (no pyplot: no global backend state). A plot with no data is skipped."""

from __future__ import annotations

import functools
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure  # no pyplot: no global backend state, Agg canvas

from resnet_exp.io import write_atomic
from resnet_exp.report import ACCURACY_PNG, STEP_TIME_PNG, TIME_TO_ACCURACY_PNG
from resnet_exp.report.rows import finite
from resnet_exp.report.stats import Design, Estimate, Group, mean_interval

LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")  # with the line style, tells the depths apart


def depth_keys(groups: Sequence[Group], design: Design) -> list[str]:
    """The swept keys that set the depth (`arch.depth`, `arch=resnet20,resnet56`): among the
    configurations with a completed job, each value has one depth, and the values more than one."""
    depths = {g.config: {r["depth"] for r in g.completed if r.get("depth") is not None} for g in groups}
    done = [(config, found.pop()) for config, found in depths.items() if len(found) == 1]
    if len({depth for _, depth in done}) < 2:
        return []
    return [key for i, key in enumerate(design.keys)
            if all(len({d for c, d in done if c[i] == value}) == 1 for value in {c[i] for c, _ in done})]


@dataclass
class DepthSeries:
    """{line label: [(depth, estimate over the completed jobs there), ...]}; `legend` names the keys."""

    legend: str
    lines: dict[str, list[tuple[int, Estimate]]]


def depth_series(rows: Sequence[Mapping[str, Any]], groups: Sequence[Group], design: Design,
                 row_key: str) -> DepthSeries:
    keys = [k for k in design.keys if k not in depth_keys(groups, design)]
    several = len({r.get("data") for r in rows if r.get("data")}) > 1
    values: dict[str, dict[int, list[float]]] = {}
    for r in rows:
        if r["status"] != "completed" or r.get("depth") is None or finite(r.get(row_key)) is None:
            continue
        if keys:
            label = ", ".join(r["_values"].get(k, "") for k in keys)
        else:  # nothing but depth (and seed) swept: one line per block order, as the rows tell it
            label = str(r.get("block_order") or "?") + (f" / {r.get('data')}" if several else "")
        values.setdefault(label, {}).setdefault(int(r["depth"]), []).append(float(r[row_key]))
    lines = {label: sorted((d, mean_interval(v)) for d, v in by_depth.items()) for label, by_depth in values.items()}
    return DepthSeries(", ".join(keys) or "block order", lines)


@dataclass
class Curve:
    """One configuration's val accuracy over training time: the mean, lowest and highest of its n jobs."""

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
        at = list(zip(*runs))  # the validations every job reached
        accs = [[acc for _, acc in points] for points in at]
        values = dict(zip(design.keys, group.config))
        label = ", ".join(group.config) or ("the run" if len(runs) == 1 else f"all {len(runs)} runs")
        curves.append(Curve(
            label, len(runs), [statistics.fmean(t for t, _ in points) for points in at],
            list(map(statistics.fmean, accs)), list(map(min, accs)), list(map(max, accs)),
            ", ".join(v for k, v in values.items() if k not in dkeys) or label,
            ", ".join(v for k, v in values.items() if k in dkeys)))
    return curves


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    write_atomic(path, lambda handle: fig.savefig(handle, format="png"), binary=True)


def _plot_depth(path: Path, quantity: str, panels: Sequence[tuple[str, DepthSeries, float, str]]) -> bool:
    """panels: (panel title, series, scale, y label); False (nothing written) if none has data. A panel
    of one depth stands its lines side by side as labelled categories: a one-value depth axis says nothing."""
    panels = [p for p in panels if p[1].lines]
    if not panels:
        return False
    fig = Figure(figsize=(6.4 * len(panels), 4.4), dpi=110)
    for ax, (panel, series, scale, ylabel) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        depths = sorted({d for pts in series.lines.values() for d, _ in pts})
        bars, single = any(e.n > 1 for pts in series.lines.values() for _, e in pts), len(depths) == 1
        step = 0.012 * ((depths[-1] - depths[0]) or 1.0) if bars else 0.0  # lines side by side: bars stay apart
        for i, (label, pts) in enumerate(series.lines.items()):
            shift = (i - (len(series.lines) - 1) / 2) * step
            xs = [i] * len(pts) if single else [d + shift for d, _ in pts]
            bar = {"yerr": [scale * (e.half_width or 0.0) for _, e in pts], "capsize": 3} if bars else {}
            (ax.errorbar if bars else ax.plot)(xs, [scale * e.mean for _, e in pts], color=f"C{i % 10}",
                                               marker="o", markersize=4, label=label, **bar)
        ax.set(title=panel, ylabel=ylabel, xlabel=series.legend if single else "depth (layers)")
        if single:
            ax.set_xticks(range(len(series.lines)), list(series.lines))
            ax.set_xlim(-0.6, len(series.lines) - 0.4)
        else:
            if len(depths) <= 12:
                ax.set_xticks(depths)
            ax.legend(title=series.legend, fontsize="small", title_fontsize="small")
        ax.grid(True, alpha=0.3)
    depths = {d for p in panels for pts in p[1].lines.values() for d, _ in pts}
    title = f"{quantity} at depth {depths.pop()}" if len(depths) == 1 else f"{quantity} vs depth"
    seeds = any(e.n > 1 for _, series, _, _ in panels for pts in series.lines.values() for _, e in pts)
    fig.suptitle(title + ("\nmean over seeds, bars = 95% interval of the mean" if seeds else " (one run per point)"),
                 fontsize="medium")
    _save(fig, path)
    return True


def _plot_time_to_accuracy(path: Path, curves: Sequence[Curve], legend: str) -> bool:
    if not curves:
        return False
    fig = Figure(figsize=(7.2, 4.6), dpi=110)
    ax = fig.add_subplot()
    colours = {key: f"C{i % 10}" for i, key in enumerate(dict.fromkeys(c.colour_key for c in curves))}
    styles = {key: (LINE_STYLES[i % len(LINE_STYLES)], MARKERS[i % len(MARKERS)])
              for i, key in enumerate(dict.fromkeys(c.style_key for c in curves))}
    seeds = any(c.n > 1 for c in curves)
    for c in curves:
        colour, (style, marker) = colours[c.colour_key], styles[c.style_key]
        ax.plot(c.times, [100 * v for v in c.mean], style, color=colour, marker=marker, markersize=4,
                label=(f"{c.label} (n={c.n})" if seeds else c.label)[:60])
        if c.n > 1:
            ax.fill_between(c.times, [100 * v for v in c.low], [100 * v for v in c.high], color=colour,
                            alpha=0.15, linewidth=0)
    ax.set(xlabel="training time (s, validation excluded)", ylabel="validation accuracy (%)")
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
    series = functools.partial(depth_series, rows, groups, design)
    drawn = {
        ACCURACY_PNG: _plot_depth(sweep_dir / ACCURACY_PNG, "Accuracy", [
            ("Test accuracy", series("test_acc"), 100.0, "test accuracy (%)"),
            ("Best validation accuracy", series("val_acc_best"), 100.0, "best validation accuracy (%)")]),
        STEP_TIME_PNG: _plot_depth(sweep_dir / STEP_TIME_PNG, "Median training step time",
                                   [("", series("step_median_ms"), 1.0, "ms per step")]),
        TIME_TO_ACCURACY_PNG: _plot_time_to_accuracy(sweep_dir / TIME_TO_ACCURACY_PNG, time_curves(groups, design),
                                                     ", ".join(design.keys))}
    return [sweep_dir / name for name, done in drawn.items() if done], [name for name, done in drawn.items() if not done]
