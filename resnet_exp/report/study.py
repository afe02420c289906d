"""The study section of a search's summary.md: one row per trial of the Optuna study and the best
trial, from the study.json the search's sweeper writes into the sweep folder (every trial of the study,
those of other processes sharing it too). No Optuna here: the report reads the file."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from resnet_exp.report.rows import count_statuses, load_json, md_cell, md_row
from resnet_exp.search import STUDY_FILE


def read_study(sweep_dir: Path) -> dict[str, Any] | None:
    """study.json of a search's sweep folder, or None (not a search, or an unreadable file)."""
    study = load_json(sweep_dir / STUDY_FILE)
    return study if study is not None and isinstance(study.get("trials"), list) else None


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


def _params(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={_number(v, 3)}" for k, v in params.items())


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
        out.write(f"Best: trial {best.get('number')}, {metric} {_number(best.get('value'), 4)}, "
                  f"`{_params(best.get('params') or {})}`\n\n")
    else:
        out.write("Best: none yet (no complete trial)\n\n")
    out.write("| trial | " + " | ".join(keys) + f" | {metric} | state | job |\n")
    out.write("|---:|" + "---:|" * len(keys) + "---:|---|---|\n")
    for t in sorted(trials, key=lambda t: t.get("number") if isinstance(t.get("number"), int) else -1):
        params, state = t.get("params") or {}, str(t.get("state"))
        if state == "pruned" and isinstance(t.get("pruned_at_epoch"), int):
            state += f" (epoch {t['pruned_at_epoch']})"
        out.write(md_row(md_cell(c) for c in (t.get("number"), *(_number(params.get(k), 3) for k in keys),
                                              _number(t.get("value"), 4), state, _job(t.get("run_dir"), sweep_dir))))
    return out.getvalue()
