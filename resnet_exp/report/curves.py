"""One run's learning curves: `curves.png` in the run folder, from `csv/metrics.csv` and `step_times.csv`
(torch-free; drawn as `plots.py` draws). Epochs count from 1; metrics.csv counts them from 0, as Lightning does."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resnet_exp.io import RESULTS_FILE, write_atomic
from resnet_exp.report import CURVES_PNG
from resnet_exp.report.rows import load_json

METRICS_CSV = Path("csv") / "metrics.csv"
STEP_TIMES_CSV = "step_times.csv"
# What the parameter groups of resnet_exp.module.split_weight_decay are, in words.
GROUP_LABELS = {"weights": "weights", "norms_biases_no_decay": "norms and biases (no weight decay)"}


def _float(text: object) -> float | None:
    """A CSV cell as a number; None when empty or not a number (a hand-edited or cut-short row)."""
    try:
        return float(text) if isinstance(text, str) and text else None
    except ValueError:
        return None


def _csv_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@dataclass
class RunCurves:
    """Per-epoch metrics ({epoch: {key: value}}), LR points per parameter group (step, lr), step times in ms."""

    epochs: dict[int, dict[str, float]] = field(default_factory=dict)
    lr: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    step_ms: list[float] = field(default_factory=list)

    def series(self, key: str) -> list[tuple[int, float]]:
        """(epoch counted from 1, value) for every epoch that logged `key`."""
        return [(e + 1, m[key]) for e, m in sorted(self.epochs.items()) if key in m]

    def best_val_epoch(self) -> tuple[int, float] | None:
        """(epoch counted from 1, val/acc) of the first epoch with the highest val/acc."""
        return max(self.series("val/acc"), key=lambda p: (p[1], -p[0]), default=None)


def read_run(run_dir: str | Path) -> RunCurves:
    """The curves of a run folder: Lightning's CSV rows merged per epoch (a row holds only what was
    logged together), and the step times of the timed (non-warm-up) steps, device time where measured."""
    run_dir, curves = Path(run_dir), RunCurves()
    for row in _csv_rows(run_dir / METRICS_CSV):
        step, epoch = _float(row.get("step")), _float(row.get("epoch"))
        for key, value in ((k, _float(text)) for k, text in row.items() if k not in ("epoch", "step")):
            if value is not None and key.startswith("lr-"):
                curves.lr.setdefault(key[3:], []).append((int(step or 0), value))
            elif value is not None and epoch is not None and not key.endswith("_step"):
                curves.epochs.setdefault(int(epoch), {})[key] = value
    curves.step_ms = [ms for r in _csv_rows(run_dir / STEP_TIMES_CSV) if r.get("warmup") in ("0", "False", "false")
                      for ms in [_float(r.get("device_ms")) or _float(r.get("host_ms"))] if ms is not None]
    return curves


def lr_lines(lr: dict[str, list[tuple[int, float]]]) -> list[tuple[str, list[tuple[int, float]]]]:
    """(label, points) of the learning-rate panel: one line when every group had the same rates,
    else one per group, labelled by what the group holds (`SGD/weights` -> weights)."""
    series = sorted(lr.items())
    if len(series) > 1 and all(points == series[0][1] for _, points in series):
        return [("all parameter groups", series[0][1])]
    several = len({name.split("/")[0] for name, _ in series}) > 1
    lines = []
    for name, points in series:
        optimizer, _, group = name.partition("/")
        label = GROUP_LABELS.get(group, group) or optimizer
        lines.append((f"{optimizer}: {label}" if several else label, points))
    return lines


def _lines(ax: Any, title: str, lines: Sequence[tuple[str, Sequence[tuple[float, float]], str]], xlabel: str,
           ylabel: str, scale: float = 1.0, empty: str = "not logged", held: bool = False) -> None:
    """One panel of lines; `held`: each value holds until the next point (a logged learning rate)."""
    from matplotlib.ticker import MaxNLocator

    drawn = [(label, points, style) for label, points, style in lines if points]
    for label, points, style in drawn:
        ax.plot([p[0] for p in points], [scale * p[1] for p in points], style,
                marker="o" if len(points) <= 60 else None, markersize=3, label=label,
                drawstyle="steps-post" if held else "default")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(True, alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs and steps are whole numbers
    if drawn:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes)


def write_curves(run_dir: str | Path) -> Path | None:
    """Draw `curves.png` into `run_dir`; None (nothing written) when the run logged no metrics."""
    run_dir = Path(run_dir)
    curves = read_run(run_dir)
    if not curves.epochs and not curves.lr and not curves.step_ms:
        return None
    results = load_json(run_dir / RESULTS_FILE)
    title = run_dir.name if results is None else (
        f"{results.get('arch')} (depth {results.get('depth')}, {results.get('block_order')}) "
        f"on {results.get('data')}: {run_dir.name}")
    from matplotlib.figure import Figure  # no pyplot: no global backend state, Agg canvas

    fig = Figure(figsize=(10, 7), dpi=100)
    (loss_ax, acc_ax), (lr_ax, time_ax) = fig.subplots(2, 2)
    _lines(loss_ax, "Loss", [("train", curves.series("train/loss_epoch"), "-"),
                             ("validation", curves.series("val/loss"), "--")], "epoch", "loss")
    _lines(acc_ax, "Accuracy", [("train", curves.series("train/acc"), "-"),
                                ("validation", curves.series("val/acc"), "--")], "epoch", "accuracy (%)", 100.0)
    _lines(lr_ax, "Learning rate (at each logged step)", [(name, points, "-") for name, points in lr_lines(curves.lr)],
           "optimizer step", "learning rate", empty="not logged: fewer steps than\ntrainer.log_every_n_steps", held=True)
    if curves.step_ms:
        time_ax.hist(curves.step_ms, bins=min(50, max(5, len(curves.step_ms) // 5)))
    else:
        time_ax.text(0.5, 0.5, "no step times", ha="center", va="center", transform=time_ax.transAxes)
    time_ax.set(xlabel="ms per training step", ylabel="steps",
                title=f"Step times ({len(curves.step_ms)} steps, warm-up left out)")
    fig.suptitle(title)
    fig.tight_layout()
    write_atomic(run_dir / CURVES_PNG, lambda handle: fig.savefig(handle, format="png"), binary=True)
    return run_dir / CURVES_PNG
