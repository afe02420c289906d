"""The rows of a sweep report, one per job folder (a run folder, or one holding only the sweep callback's
`job_status.json`), and what the sweep varies."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from resnet_exp.errors import UserError, is_number, shortened
from resnet_exp.io import RESULTS_FILE, is_run_dir
from resnet_exp.models.families import PRESETS, layout, layout_depth, preset_depth
from resnet_exp.report import JOB_STATUS_FILE

# The public keys of a row, in table order (a row also holds private keys: see read_job).
COLUMNS = ("job", "status", "overrides", "arch", "depth", "block_order", "data", "params",
           "val_acc_best", "test_acc", "selected_on", "step_median_ms", "images_per_s", "tflop_per_s", "mfu",
           "wall_time_s", "error")
ERROR_MARKERS = ("Traceback (most recent call last)", "Error executing job")
MAX_SCAN_DEPTH = 3  # job folders may sit below the sweep folder (hydra.sweep.subdir with '/')
# The type each results.json key must have for the report to use it (numbers: int or float).
RESULT_TYPES: dict[str, tuple[type, ...]] = {
    "status": (str,), "arch": (str,), "block_order": (str,), "data": (str,), "selected_on": (str,),
    "error": (str,), "depth": (int,), "params": (int,), "epochs": (int,), "steps": (int,),
    "val/acc_best": (int, float), "val/acc": (int, float), "test/acc": (int, float), "test/loss": (int, float),
    "wall_time_s": (int, float), "overrides": (list,), "step_time": (dict,), "throughput": (dict,),
    "time_to_accuracy": (list,),
}


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def load_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or None (missing, unreadable, not an object)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _get(mapping: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        mapping = mapping.get(key) if isinstance(mapping, Mapping) else None
    return mapping


def finite(value: Any) -> float | None:
    """A finite float, or None for anything else (missing, text, NaN, an interpolation)."""
    return float(value) if is_number(value) and math.isfinite(value) else None


def find_jobs(sweep_dir: Path, depth: int = 1) -> list[Path]:
    """Job folders under `sweep_dir` (not descending into a job, nor into hidden folders)."""
    jobs: list[Path] = []
    for child in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if is_run_dir(child) or (child / JOB_STATUS_FILE).is_file():
            jobs.append(child)
        elif depth < MAX_SCAN_DEPTH:
            jobs += find_jobs(child, depth + 1)
    return jobs


def depth_of(arch: Mapping[str, Any], name: str | None) -> int | None:
    """arch.depth if set; else from the units per stage (arch.blocks), or the named arch's depth (the zoo's)."""
    depth = arch.get("depth")
    if isinstance(depth, int) and not isinstance(depth, bool):
        return depth
    name = str(name or arch.get("name") or "")
    default = preset_depth(name) if name in PRESETS else None
    blocks, block = arch.get("blocks"), arch.get("block")
    if not (isinstance(blocks, list) and blocks and all(isinstance(b, int) for b in blocks)):
        return default
    if block not in ("basic", "bottleneck"):  # the block of the named arch's own layout
        block = layout(PRESETS[name].family, default).block.value if default is not None else None
    return layout_depth(block, blocks) if block else None


def block_order_of(arch: Mapping[str, Any], name: str | None) -> str | None:
    """arch.block_order if set, else the named arch's own (pre for the v2 aliases)."""
    order = arch.get("block_order")
    if isinstance(order, str) and order and "${" not in order:
        return order
    name = str(name or arch.get("name") or "")
    return PRESETS[name].block_order.value if name in PRESETS else None


def _log_error(job: Path) -> str | None:
    """The error a job's log ends with (the last line of its last traceback), or None."""
    for log in sorted(job.glob("*.log")):
        try:
            text = log.read_text(errors="replace")
        except OSError:
            continue
        found = [text.rfind(m) for m in ERROR_MARKERS]
        if max(found) < 0:
            continue
        tail = [ln for ln in text[max(found):].splitlines()[1:] if ln.strip() and not ln[:1].isspace()]
        return shortened(tail[-1].strip(), 500) if tail else "see " + log.name
    return None


def read_results_checked(job: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """A job's results.json (None if none is readable) less every ill-typed value, and the problems found."""
    def reject(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    path = job / RESULTS_FILE
    if not path.is_file():
        return None, []
    try:
        results = json.loads(path.read_text(), parse_constant=reject)
    except (OSError, ValueError) as exc:
        return None, [f"{RESULTS_FILE}: cannot parse: {str(exc).splitlines()[0]}"]
    if not isinstance(results, dict):
        return None, [f"{RESULTS_FILE}: not a JSON object"]
    wrong = []
    for key, types in RESULT_TYPES.items():
        value = results.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
            wrong.append(f"{key} is {json.dumps(value)[:40]}, not {' or '.join(t.__name__ for t in types)}")
            del results[key]
    return results, [f"{RESULTS_FILE}: {', '.join(wrong)}; left out"] if wrong else []


def read_job(job: Path, sweep_dir: Path) -> dict[str, Any]:
    """One row of the report (see COLUMNS), from whatever the job folder holds."""
    results, problems = read_results_checked(job)
    res, marker = results or {}, load_json(job / JOB_STATUS_FILE)
    log_error = None if results is not None or marker is not None else _log_error(job)
    marker = marker or {}
    config = _load_yaml(job / ".hydra" / "config.yaml") or {}
    hydra = _load_yaml(job / ".hydra" / "hydra.yaml") or {}
    overrides = next((o for o in (res.get("overrides"), _load_yaml(job / ".hydra" / "overrides.yaml"),
                                  marker.get("overrides")) if isinstance(o, list)), [])
    choices = _get(hydra, "hydra.runtime.choices") or {}
    # A folder that lost its .hydra/ still has the overrides (job_status.json): arch=, arch.*=, data=.
    typed = dict(str(o).lstrip("+~").partition("=")[::2] for o in overrides)
    arch_cfg = config.get("arch") if isinstance(config.get("arch"), Mapping) else {}
    if not arch_cfg:
        arch_cfg = {k[5:]: (int(v) if v.isdigit() else v) for k, v in typed.items() if k.startswith("arch.")}
    arch = res.get("arch") or choices.get("arch") or arch_cfg.get("name") or typed.get("arch")
    # read_results_checked left out every value of the wrong type.
    step_time, throughput = res.get("step_time") or {}, res.get("throughput") or {}
    points = [(finite(p.get("train_time_s")), finite(p.get("val/acc")))
              for p in res.get("time_to_accuracy") or [] if isinstance(p, Mapping)]
    found = re.match(r"\d+", job.name)
    nums = (_get(hydra, "hydra.job.num"), marker.get("job_num"), int(found.group()) if found else None)
    unreadable = problems[0] if results is None and problems else None
    if unreadable is not None:
        status = "unreadable"
    elif results is not None:
        status = str(results.get("status") or "completed")
    else:
        status = str(marker.get("status") or ("failed" if log_error else "interrupted"))
    return {
        "job": job.relative_to(sweep_dir).as_posix(), "status": status, "overrides": " ".join(map(str, overrides)),
        "arch": arch, "depth": res.get("depth") or depth_of(arch_cfg, arch),
        "block_order": res.get("block_order") or block_order_of(arch_cfg, arch),
        "data": res.get("data") or choices.get("data") or _get(config, "data.name") or typed.get("data"),
        "params": res.get("params"), "val_acc_best": finite(res.get("val/acc_best")),
        "test_acc": finite(res.get("test/acc")), "selected_on": res.get("selected_on"),
        "step_median_ms": finite(step_time.get("median_ms")),
        "images_per_s": finite(throughput.get("images_per_s", step_time.get("images_per_s"))),
        "tflop_per_s": finite(throughput.get("tflop_per_s")), "mfu": finite(throughput.get("mfu")),
        "wall_time_s": finite(res.get("wall_time_s")),
        "error": unreadable or (res.get("error") if results is not None else marker.get("error") or log_error),
        # Private: the job number, problems with its files, its overrides (as a list and each key's value
        # as typed), its (train time, val/acc) points.
        "_num": next((n for n in nums if isinstance(n, int)), None), "_problems": problems,
        "_overrides": [str(o) for o in overrides], "_values": typed,
        "_time_to_accuracy": [p for p in points if None not in p],
    }


def read_sweep(sweep_dir: Path) -> list[dict[str, Any]]:
    """Rows of every job, in job order; raise UserError when `sweep_dir` is not a sweep folder."""
    expected = ("expected a Hydra multirun folder (e.g. outputs/train/multiruns/<time>/) "
                "whose sub-folders are jobs holding .hydra/ (and results.json once finished)")
    if not sweep_dir.exists():
        raise UserError(f"{sweep_dir}: no such directory; {expected}")
    if not sweep_dir.is_dir():
        raise UserError(f"{sweep_dir}: not a directory; {expected}")
    if is_run_dir(sweep_dir) and not (sweep_dir / "multirun.yaml").is_file():
        raise UserError(f"{sweep_dir}: is the folder of a single run, not of a sweep; {expected}")
    jobs = find_jobs(sweep_dir)
    if not jobs:
        raise UserError(f"{sweep_dir}: no job folders found; {expected}")
    if not any((j / RESULTS_FILE).is_file() for j in jobs) and any((j / "bench.json").is_file() for j in jobs):
        raise UserError(f"{sweep_dir}: is a sweep of resnet_exp.bench; its table is bench.csv / bench.md "
                        "there. This report reads training sweeps (results.json per job)")
    rows = [read_job(job, sweep_dir) for job in jobs]
    rows.sort(key=lambda r: (r["_num"] is None, r["_num"] if r["_num"] is not None else 0, r["job"]))
    return rows


def is_sweep(override: str) -> bool:
    """`key=a,b`, `key=range(...)`, `key=interval(...)`...: a sweep override, as Hydra's parser reads it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        return OverridesParser.create().parse_overrides([override])[0].is_sweep_override()
    except OverrideParseException:
        return False


def sweep_axes(sweep_dir: Path) -> list[str]:
    """What the sweep varies (`arch.block_order=post,pre`): multirun.yaml's sweeper params, then (winning) its
    command line's sweep overrides."""
    multirun = _load_yaml(sweep_dir / "multirun.yaml")
    params = _get(multirun, "hydra.sweeper.params")
    axes = {str(k): f"{k}={v}" for k, v in params.items()} if isinstance(params, Mapping) else {}
    task = _get(multirun, "hydra.overrides.task")
    for override in task if isinstance(task, list) else []:
        key = str(override).partition("=")[0]
        if key in axes or is_sweep(str(override)):
            axes[key] = str(override)
    return list(axes.values())
