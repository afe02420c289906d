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


def _block(title: str, rows: Sequence[tuple[str, str]], *above: str) -> str:
    """The block: a rule with its title, `above` (a table), one line per (label, value), a rule."""
    head = f"── {title} "
    lines = [f"{label:<17} {value}" for label, value in rows]
    return "\n".join([head + "─" * max(3, RULE_WIDTH - len(head)), *above, *lines, "─" * RULE_WIDTH])


def log_to_files(text: str, name: str = "resnet_exp") -> None:
    """`text` as an INFO record of logger `name`, written to the log files (the job's run.log) only:
    for what the console shows in its own way (a printed block, a progress bar)."""
    record = logging.getLogger(name).makeRecord(name, logging.INFO, __file__, 0, text, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and record.levelno >= handler.level:
            handler.handle(record)


def format_duration(seconds: float) -> str:
    """4s, 6m41s, 1h02m."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


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
    loss = results.get("test/loss")
    text = _pct(results.get("test/acc"))
    if isinstance(loss, (int, float)):
        text += f"   (loss {loss:.4f})"
    if isinstance(results.get("test/acc_top5"), (int, float)):
        text += f"   top-5 {_pct(results['test/acc_top5'])}"
    return "test accuracy", text


def run_summary(results: Mapping[str, Any], run_dir: str | Path, offline_wandb_runs: Sequence[str | Path] = ()) -> str:
    """The block at the end of a training run (`results` as written to results.json)."""
    run_dir = Path(run_dir)
    rows = [_test_row(results)]
    if results.get("status") == "pruned":  # a search stopped it early; it was never tested
        rows = [("search trial", f"{results.get('trial')}: pruned after epoch {results.get('pruned_at_epoch')}, "
                                 "not tested")]
    elif results.get("trial") is not None:
        rows.append(("search trial", str(results["trial"])))
    best = read_run(run_dir).best_val_epoch()
    epochs = results.get("epochs")
    if results.get("val/acc_best") is not None:
        at = f"   at epoch {best[0]} of {epochs}" if best else ""
        rows.append(("best validation", _pct(results["val/acc_best"]) + at))
    training = [f"{epochs} epochs", f"{results.get('steps')} steps"]
    if isinstance(results.get("wall_time_s"), (int, float)):
        training.append(f"{format_duration(results['wall_time_s'])} wall (fit + test)")
    images_per_s = (results.get("step_time") or {}).get("images_per_s")
    if images_per_s:
        training.append(f"{images_per_s:.0f} img/s")
    rows.append(("training", ", ".join(training)))
    rows.append(("run folder", shown_path(run_dir)))
    if results.get("best_checkpoint"):
        rows.append(("best checkpoint", shown_path(run_dir / results["best_checkpoint"])))
    if (run_dir / CURVES_PNG).is_file():
        rows.append(("curves", shown_path(run_dir / CURVES_PNG)))
    if offline_wandb_runs:  # a resumed run's segments in order: one command uploads its whole history
        rows.append(("wandb (offline)", "wandb sync " + " ".join(shown_path(d) for d in offline_wandb_runs)))
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
