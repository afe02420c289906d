"""Tables of a sweep report: the rows of every job as summary.csv and summary.md in the sweep folder (after
a search's study, read from the study.json its sweeper writes: no Optuna here), and `build_report`, which
writes them, the seed statistics and the plots. No Hydra and no torch here."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resnet_exp.io import write_atomic
from resnet_exp.report import COMPARISONS_CSV, GROUPS_CSV, SUMMARY_CSV, SUMMARY_MD
from resnet_exp.report.groups import comparisons_markdown, groups_markdown, write_comparisons_csv, write_groups_csv
from resnet_exp.report.rows import COLUMNS, count_statuses, load_json, md_row, read_sweep, sweep_axes, write_csv
from resnet_exp.report.stats import Design, Group, Pair, comparisons, design_of, group_rows, present_metrics
from resnet_exp.search import STUDY_FILE

MD_HEADERS = {**{c: c.replace("_", " ") for c in COLUMNS}, "val_acc_best": "best val acc %", "test_acc": "test acc %",
              "step_median_ms": "median step ms", "images_per_s": "images/s", "tflop_per_s": "TFLOP/s", "mfu": "MFU %"}
NUMERIC = ("depth", "params", "val_acc_best", "test_acc", "step_median_ms", "images_per_s", "tflop_per_s", "mfu",
           "wall_time_s")


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


def _number(value: Any, digits: int) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "" if value is None else str(value)
    return str(value) if isinstance(value, int) else f"{value:.{digits}g}"


def _job(run_dir: Any, sweep_dir: Path) -> str:
    """The trial's job folder: relative to this sweep, or the full path of another process's."""
    if not isinstance(run_dir, str) or not run_dir:
        return ""
    path, here = Path(run_dir).resolve(), sweep_dir.resolve()
    return path.relative_to(here).as_posix() if path.is_relative_to(here) else os.fspath(path)


def study_markdown(study: Mapping[str, Any], sweep_dir: Path) -> str:
    """The section: study name and storage, trial counts, the best trial, the table of trials."""
    trials = [t for t in study["trials"] if isinstance(t, Mapping)]
    metric = study.get("metric") or "value"
    keys = sorted({k for t in trials for k in (t.get("params") or {})})
    out = io.StringIO()
    out.write(f"## Study `{study.get('study_name')}`: {study.get('direction')} {metric}\n\n")
    out.write(f"{len(trials)} trials: {count_statuses(str(t.get('state')) for t in trials)}; "
              f"storage `{study.get('storage')}`\n\n")
    best = study.get("best")
    if isinstance(best, Mapping):
        params = " ".join(f"{k}={_number(v, 3)}" for k, v in (best.get("params") or {}).items())
        out.write(f"Best: trial {best.get('number')}, {metric} {_number(best.get('value'), 4)}, `{params}`\n\n")
    else:
        out.write("Best: none yet (no complete trial)\n\n")
    out.write("| trial | " + " | ".join(keys) + f" | {metric} | state | job |\n")
    out.write("|---:|" + "---:|" * len(keys) + "---:|---|---|\n")
    for t in sorted(trials, key=lambda t: t.get("number") if isinstance(t.get("number"), int) else -1):
        params, state = t.get("params") or {}, str(t.get("state"))
        if state == "pruned" and isinstance(t.get("pruned_at_epoch"), int):
            state += f" (epoch {t['pruned_at_epoch']})"
        out.write(md_row((t.get("number"), *(_number(params.get(k), 3) for k in keys), _number(t.get("value"), 4),
                          state, _job(t.get("run_dir"), sweep_dir))))
    return out.getvalue()


def _md_cell(column: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    if column in ("val_acc_best", "test_acc"):
        return f"{100 * value:.2f}"
    if column == "selected_on" and value == "test":
        return "**test** †"
    if column == "params":  # an int: results.json's type check leaves out any other value
        return f"{value / 1e6:.2f}M" if value >= 1e5 else f"{value / 1e3:.1f}k" if value >= 1e3 else str(int(value))
    if column in ("step_median_ms", "wall_time_s"):
        return f"{value:.1f}" if value >= 100 else f"{value:.2f}"
    if column == "mfu":
        return f"{100 * value:.1f}"
    if column == "tflop_per_s":
        return f"{value:.3g}"
    if column == "images_per_s":
        return f"{value:.0f}" if value >= 100 else f"{value:.1f}"
    return f"`{value}`" if column == "overrides" else str(value)


def markdown(rows: Sequence[Mapping[str, Any]], sweep_dir: Path, axes: Sequence[str] = ()) -> str:
    """summary.md: a search's study (every trial, the best), then a header (sweep axes, overrides
    all jobs share) and one row per job."""
    lists = [r.get("_overrides") or [] for r in rows]
    common = [o for o in lists[0] if all(o in other for other in lists[1:])] if len(lists) > 1 else []
    # MFU only where some job has it (a GPU with a known peak); the error and selected-on columns
    # only if some job failed or was selected on the test split.
    optional = ("error", "mfu", "selected_on")
    columns = [c for c in COLUMNS if c not in optional or any(r.get(c) is not None for r in rows)]
    out = io.StringIO()
    out.write(f"# Sweep {sweep_dir.name}\n\n")
    study = load_json(sweep_dir / STUDY_FILE)  # a search's
    if study is not None and isinstance(study.get("trials"), list):
        out.write(study_markdown(study, sweep_dir) + "\n## Jobs of this sweep\n\n")
    out.write(f"{len(rows)} jobs: {count_statuses(r['status'] for r in rows)}\n\n")
    if axes:
        out.write("Swept: " + ", ".join(f"`{a}`" for a in axes) + "\n\n")
    if common:
        out.write(f"Overrides of every job: `{' '.join(common)}`; the table shows the others.\n\n")
    out.write(md_row(MD_HEADERS[c] for c in columns))
    out.write("|" + "|".join("---:" if c in NUMERIC else "---" for c in columns) + "|\n")
    for row, own in zip(rows, lists):
        shown = dict(row, overrides=" ".join(o for o in own if o not in common))
        out.write(md_row(_md_cell(c, shown.get(c)) for c in columns))
    if any(r.get("selected_on") == "test" for r in rows):
        out.write("\n† the best checkpoint was selected on the test split (data.val_on_test=true): "
                  "its test accuracy is optimistic, not a held-out figure.\n")
    return out.getvalue()


def build_report(sweep_dir: str | Path, plots: bool = True) -> Report:
    """Read the sweep and write summary.csv, summary.md, groups.csv, comparisons.csv and (if there
    is data) the plots."""
    sweep_dir = Path(sweep_dir)
    rows = read_sweep(sweep_dir)
    design = design_of(rows, sweep_dir)
    groups = group_rows(rows, design)
    metrics = present_metrics(groups)
    report = Report(sweep_dir, rows, design, groups, comparisons(groups, design, metrics))
    write_csv(sweep_dir / SUMMARY_CSV, COLUMNS, [["" if r.get(c) is None else r.get(c) for c in COLUMNS] for r in rows])
    md = "\n".join(part for part in (markdown(rows, sweep_dir, sweep_axes(sweep_dir)),
                                      groups_markdown(groups, design, metrics),
                                      comparisons_markdown(report.pairs, groups, design)) if part)
    write_atomic(sweep_dir / SUMMARY_MD, lambda handle: handle.write(md))
    write_groups_csv(sweep_dir / GROUPS_CSV, groups, design, metrics)
    write_comparisons_csv(sweep_dir / COMPARISONS_CSV, report.pairs, design)
    report.files += [sweep_dir / name for name in (SUMMARY_CSV, SUMMARY_MD, GROUPS_CSV, COMPARISONS_CSV)]
    if plots:
        from resnet_exp.report.plots import write_plots  # matplotlib only when plotting

        written, report.skipped_plots = write_plots(rows, groups, design, sweep_dir)
        report.files += written
    return report


def public_rows(report: Report) -> list[dict[str, Any]]:
    """The rows without the report's private keys (for tables elsewhere, e.g. wandb)."""
    return [{c: r.get(c) for c in COLUMNS} for r in report.rows]


def log_wandb_table(report: Report, project: str, entity: str | None, group: str, tags: list[str] | None = None) -> str:
    """One extra wandb run in the sweep's group holding the summary table and plots (online);
    returns its URL."""
    import wandb

    run = wandb.init(project=project, entity=entity, group=group, tags=tags, job_type="sweep_report",
                     name=f"{group}-summary", dir=str(report.sweep_dir), mode="online", reinit="finish_previous")
    try:
        table = wandb.Table(columns=list(COLUMNS), data=[[row[c] for c in COLUMNS] for row in public_rows(report)])
        images = {p.stem: wandb.Image(str(p)) for p in report.files if p.suffix == ".png"}
        run.log({"sweep_summary": table, **images})
    finally:
        run.finish()
    return run.url
