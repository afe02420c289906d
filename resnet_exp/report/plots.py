"""The PNG plots of a sweep report: accuracy and median step time against depth, one line per
block order (per block order and dataset when a sweep spans datasets), and validation accuracy
against cumulative training time, one line per job. matplotlib's Agg canvas
through `Figure` (no pyplot, so no global backend state); a plot with no data is skipped."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from resnet_exp.io import write_atomic
from resnet_exp.report import ACCURACY_PNG, STEP_TIME_PNG, TIME_TO_ACCURACY_PNG
from resnet_exp.report.rows import finite


def _series(rows: Sequence[Mapping[str, Any]], metric: str) -> dict[str, list[tuple]]:
    """{line label: [(depth, mean of metric over the jobs at that depth), ...]} of completed jobs."""
    datasets = {r.get("data") for r in rows if r.get("data")}
    points: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["status"] != "completed" or r.get("depth") is None or finite(r.get(metric)) is None:
            continue
        label = str(r.get("block_order") or "?")
        if len(datasets) > 1:
            label += f" / {r.get('data')}"
        points[label][int(r["depth"])].append(float(r[metric]))
    return {label: sorted((d, sum(v) / len(v)) for d, v in by_depth.items())
            for label, by_depth in sorted(points.items())}


def _plot(path: Path, title: str, ylabel: str, lines: Iterable[tuple]) -> bool:
    """lines: (series, style, label suffix, scale). False (nothing written) if there is nothing."""
    lines = [line for line in lines if line[0]]
    if not lines:
        return False
    from matplotlib.figure import Figure  # no pyplot: no global backend state, Agg canvas

    fig = Figure(figsize=(6.4, 4.2), dpi=110)
    ax = fig.add_subplot()
    colours = {}
    depths = set()
    for series, style, suffix, scale in lines:
        for label, pts in series.items():
            colour = colours.setdefault(label, f"C{len(colours) % 10}")
            xs, ys = [p[0] for p in pts], [scale * p[1] for p in pts]
            depths.update(xs)
            ax.plot(xs, ys, style, color=colour, marker="o", label=f"{label}{suffix}")
    ax.set_xlabel("depth (layers)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if len(depths) <= 12:
        ax.set_xticks(sorted(depths))
    ax.grid(True, alpha=0.3)
    ax.legend(title="block order", fontsize="small")
    fig.tight_layout()
    write_atomic(path, lambda handle: fig.savefig(handle, format="png"), binary=True)
    return True


def _plot_time_to_accuracy(path: Path, rows: Sequence[Mapping[str, Any]]) -> bool:
    curves = [(r["job"], r.get("overrides") or r["job"], r["_time_to_accuracy"]) for r in rows
              if r.get("_time_to_accuracy")]
    if not curves:
        return False
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=110)
    ax = fig.add_subplot()
    for job, label, points in curves:
        ax.plot([p[0] for p in points], [100.0 * p[1] for p in points], "-", marker=".",
                label=f"{job}: {label}"[:60])
    ax.set_xlabel("training time (s, validation excluded)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("Time to accuracy")
    ax.grid(True, alpha=0.3)
    if len(curves) <= 12:
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    write_atomic(path, lambda handle: fig.savefig(handle, format="png"), binary=True)
    return True


def write_plots(rows: Sequence[Mapping[str, Any]], sweep_dir: Path) -> tuple:
    """(written files, names of plots skipped for lack of data)."""
    written, skipped = [], []
    accuracy = [(_series(rows, "test_acc"), "-", " test", 100.0),
                (_series(rows, "val_acc_best"), "--", " best val", 100.0)]
    if _plot(sweep_dir / ACCURACY_PNG, "Accuracy vs depth", "accuracy (%)", accuracy):
        written.append(sweep_dir / ACCURACY_PNG)
    else:
        skipped.append(ACCURACY_PNG)
    steps = [(_series(rows, "step_median_ms"), "-", "", 1.0)]
    if _plot(sweep_dir / STEP_TIME_PNG, "Median training step time vs depth", "ms per step", steps):
        written.append(sweep_dir / STEP_TIME_PNG)
    else:
        skipped.append(STEP_TIME_PNG)
    if _plot_time_to_accuracy(sweep_dir / TIME_TO_ACCURACY_PNG, rows):
        written.append(sweep_dir / TIME_TO_ACCURACY_PNG)
    else:
        skipped.append(TIME_TO_ACCURACY_PNG)
    return written, skipped
