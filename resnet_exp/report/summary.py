"""The short block a run, an evaluation and a sweep print on stdout when they end (torch-free). It
comes from results.json's values and the run folder, so the block says what the files say."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from resnet_exp.report import CURVES_PNG
from resnet_exp.report.curves import read_run

RULE_WIDTH = 62


def _block(title: str, rows: Sequence[tuple[str, Any]], *above: str) -> str:
    """The block: a rule with its title, `above` (a table), one line per (label, value) with a value, a rule."""
    head = f"── {title} "
    lines = [f"{label:<17} {value}" for label, value in rows if value]
    return "\n".join([head + "─" * max(3, RULE_WIDTH - len(head)), *above, *lines, "─" * RULE_WIDTH])


def log_to_files(text: str, name: str = "resnet_exp") -> None:
    """`text` as an INFO record of logger `name` in the log files (run.log) only: the console shows it its own way."""
    record = logging.getLogger(name).makeRecord(name, logging.INFO, __file__, 0, text, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and record.levelno >= handler.level:
            handler.handle(record)


def format_duration(seconds: float) -> str:
    """4s, 6m41s, 1h02m."""
    minutes, seconds = divmod(max(0, int(round(seconds))), 60)
    if minutes == 0:
        return f"{seconds}s"
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def shown_path(path: str | Path) -> str:
    """Relative to the working directory when inside it (shorter, copy-pasteable), else absolute."""
    path = Path(path)
    try:
        return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd()) else str(path)
    except ValueError:  # another drive
        return str(path)


def _pct(value: Any) -> str:
    return f"{100 * float(value):.2f} %" if isinstance(value, (int, float)) else "-"


def _test_row(results: Mapping[str, Any]) -> tuple[str, str]:
    loss, top5 = results.get("test/loss"), results.get("test/acc_top5")
    text = _pct(results.get("test/acc"))
    text += f"   (loss {loss:.4f})" if isinstance(loss, (int, float)) else ""
    text += f"   top-5 {_pct(top5)}" if isinstance(top5, (int, float)) else ""
    return "test accuracy", text


def run_summary(results: Mapping[str, Any], run_dir: str | Path, offline_wandb_runs: Sequence[str | Path] = ()) -> str:
    """The block at the end of a training run (`results` as written to results.json)."""
    run_dir, epochs, wall = Path(run_dir), results.get("epochs"), results.get("wall_time_s")
    best, trial = read_run(run_dir).best_val_epoch(), results.get("trial")
    images_per_s = (results.get("step_time") or {}).get("images_per_s")
    training = [f"{epochs} epochs", f"{results.get('steps')} steps"]
    training += [f"{format_duration(wall)} wall (fit + test)"] if isinstance(wall, (int, float)) else []
    training += [f"{images_per_s:.0f} img/s"] if images_per_s else []
    pruned = results.get("status") == "pruned"  # a search stopped it early; it was never tested
    rows = [("search trial", f"{trial}: pruned after epoch {results.get('pruned_at_epoch')}, not tested")
            if pruned else _test_row(results),
            ("search trial", None if pruned or trial is None else str(trial)),
            ("best validation", results.get("val/acc_best") is not None and _pct(results["val/acc_best"])
             + (f"   at epoch {best[0]} of {epochs}" if best else "")),
            ("training", ", ".join(training)),
            ("run folder", shown_path(run_dir)),
            ("best checkpoint", results.get("best_checkpoint") and shown_path(run_dir / results["best_checkpoint"])),
            ("curves", (run_dir / CURVES_PNG).is_file() and shown_path(run_dir / CURVES_PNG)),
            # A resumed run's segments in order: one command uploads its whole history.
            ("wandb (offline)", offline_wandb_runs and "wandb sync " + " ".join(map(shown_path, offline_wandb_runs)))]
    return _block("run summary", rows)


def eval_summary(results: Mapping[str, Any], run_dir: str | Path) -> str:
    """The block at the end of `python -m resnet_exp.eval`."""
    rows = [_test_row(results),
            ("checkpoint", shown_path(results.get("checkpoint") or "-")),
            ("model", f"{results.get('arch')} on {results.get('data')}, {results.get('params')} parameters"),
            ("results", shown_path(Path(run_dir) / "results.json"))]
    return _block("evaluation", rows)


def sweep_summary(table_md: str, summary_md: str | Path, counts: Mapping[str, int]) -> str:
    """The block at the end of a multirun: the summary table and where it is."""
    done = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    rows = [("jobs", f"{sum(counts.values())} ({done})" if done else "0"), ("summary", shown_path(summary_md))]
    return _block("sweep summary", rows, table_md.rstrip(), "")
