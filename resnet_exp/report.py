"""The report of a sweep: `python -m resnet_exp.report <sweep dir>`.

Reads every job folder of a Hydra multirun folder (a sub-folder holding `.hydra/`, and
`results.json` once the job finished) and writes into the sweep folder:

    summary.csv                 one row per job, raw numbers (accuracies as fractions)
    summary.md                  the same as a Markdown table (accuracies in %)
    accuracy_vs_depth.png       test (solid) and best validation (dashed) accuracy, one line per block order
    step_time_vs_depth.png      median training step time, one line per block order

A job without `results.json` is `failed` when it left an error behind (`job_status.json` written
by the sweep callback, or a traceback in its log) and `interrupted` otherwise. The same report is
built at the end of every multirun by `resnet_exp.sweep_report.SweepReport`; this CLI rebuilds it
for any sweep folder, also one whose sweep was interrupted. No Hydra and no torch here.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import yaml

from resnet_exp.errors import UserError
from resnet_exp.results import RESULTS_FILE

SUMMARY_CSV, SUMMARY_MD = "summary.csv", "summary.md"
ACCURACY_PNG, STEP_TIME_PNG = "accuracy_vs_depth.png", "step_time_vs_depth.png"
# Written by the sweep callback into a job folder when the job raised (the folder may hold only it).
JOB_STATUS_FILE = "job_status.json"
COLUMNS = ("job", "status", "overrides", "arch", "depth", "block_order", "data", "params",
           "val_acc_best", "test_acc", "step_median_ms", "images_per_s", "wall_time_s", "error")
MD_HEADERS = {
    "job": "job", "status": "status", "overrides": "overrides", "arch": "arch", "depth": "depth",
    "block_order": "block order", "data": "data", "params": "params", "val_acc_best": "best val acc %",
    "test_acc": "test acc %", "step_median_ms": "median step ms", "images_per_s": "images/s",
    "wall_time_s": "wall time s", "error": "error",
}
# Depth of a family config used without arch.depth (resnet_exp/models/registry.py).
FAMILY_DEPTHS = {"resnet": 50, "cifar_resnet": 20, "cifar_resnet_bottleneck": 164}
ERROR_MARKERS = ("Traceback (most recent call last)", "Error executing job")
MAX_SCAN_DEPTH = 3  # job folders may sit below the sweep folder (hydra.sweep.subdir with '/')


@dataclass
class Report:
    sweep_dir: Path
    rows: List[Dict[str, Any]]
    files: List[Path] = field(default_factory=list)
    skipped_plots: List[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r["status"] == status)


# ---------------------------------------------------------------------------- reading
def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def _load_json(path: Path) -> Optional[Dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _get(mapping: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(mapping, Mapping):
            return None
        mapping = mapping.get(key)
    return mapping


def finite(value: Any) -> Optional[float]:
    """A finite float, or None for anything else (missing, text, NaN, an interpolation)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _is_job(path: Path) -> bool:
    return (path / ".hydra").is_dir() or (path / JOB_STATUS_FILE).is_file()


def find_jobs(sweep_dir: Path) -> List[Path]:
    """Job folders under `sweep_dir` (not descending into a job, nor into hidden folders)."""
    jobs: List[Path] = []

    def walk(folder: Path, depth: int) -> None:
        for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if _is_job(child):
                jobs.append(child)
            elif depth < MAX_SCAN_DEPTH:
                walk(child, depth + 1)

    walk(sweep_dir, 1)
    return jobs


def depth_of(arch: Mapping[str, Any], name: Optional[str]) -> Optional[int]:
    """arch.depth if set; else from the layout of a custom net, the name (resnet110, resnet50v2),
    or the family's default depth."""
    depth = arch.get("depth")
    if isinstance(depth, int) and not isinstance(depth, bool):
        return depth
    blocks, block = arch.get("blocks"), arch.get("block")
    if isinstance(blocks, list) and blocks and all(isinstance(b, int) for b in blocks) and block:
        return 2 + sum(blocks) * (3 if block == "bottleneck" else 2)  # stem conv + units + fc
    name = name or arch.get("name")
    match = re.fullmatch(r"resnet(\d+)(v2)?", str(name or ""))
    if match:
        return int(match.group(1))
    return FAMILY_DEPTHS.get(str(name))


def block_order_of(arch: Mapping[str, Any], name: Optional[str]) -> Optional[str]:
    order = arch.get("block_order")
    if isinstance(order, str) and order and "${" not in order:
        return order
    if not name:
        return None
    return "pre" if str(name).endswith("v2") else "post"


def _log_error(job: Path) -> Optional[str]:
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
        return tail[-1].strip()[:500] if tail else "see " + log.name
    return None


def _status(results: Optional[Dict[str, Any]], marker: Optional[Dict[str, Any]], log_error: Optional[str]) -> str:
    if results is not None:
        return str(results.get("status") or "completed")
    if marker is not None and marker.get("status"):
        return str(marker["status"])
    return "failed" if log_error else "interrupted"


def read_job(job: Path, sweep_dir: Path) -> Dict[str, Any]:
    """One row of the report (see COLUMNS), from whatever the job folder holds."""
    results = _load_json(job / RESULTS_FILE)
    marker = _load_json(job / JOB_STATUS_FILE)
    config = _load_yaml(job / ".hydra" / "config.yaml") or {}
    hydra = _load_yaml(job / ".hydra" / "hydra.yaml") or {}
    overrides = (results or {}).get("overrides")
    if not isinstance(overrides, list):
        overrides = _load_yaml(job / ".hydra" / "overrides.yaml")
    if not isinstance(overrides, list):
        overrides = (marker or {}).get("overrides") or []
    choices = _get(hydra, "hydra.runtime.choices") or {}
    # A folder that lost its .hydra/ still has the overrides (job_status.json): arch=, arch.*=, data=.
    typed = dict(str(o).lstrip("+~").partition("=")[::2] for o in overrides)
    arch_cfg = config.get("arch") if isinstance(config.get("arch"), Mapping) else {}
    if not arch_cfg:
        arch_cfg = {k[5:]: (int(v) if v.isdigit() else v) for k, v in typed.items() if k.startswith("arch.")}
    res = results or {}
    arch = res.get("arch") or choices.get("arch") or arch_cfg.get("name") or typed.get("arch")
    depth = res.get("depth") if finite(res.get("depth")) is not None else depth_of(arch_cfg, arch)
    step_time = res.get("step_time") if isinstance(res.get("step_time"), Mapping) else {}
    job_num = _get(hydra, "hydra.job.num")
    if not isinstance(job_num, int):
        job_num = (marker or {}).get("job_num")
    if not isinstance(job_num, int):
        found = re.match(r"\d+", job.name)
        job_num = int(found.group()) if found else None
    log_error = None if results is not None or marker is not None else _log_error(job)
    return {
        "job": job.relative_to(sweep_dir).as_posix(),
        "status": _status(results, marker, log_error),
        "overrides": " ".join(str(o) for o in overrides),
        "arch": arch,
        "depth": int(depth) if depth is not None else None,
        "block_order": res.get("block_order") or block_order_of(arch_cfg, arch),
        "data": res.get("data") or choices.get("data") or _get(config, "data.name") or typed.get("data"),
        "params": res.get("params"),
        "val_acc_best": finite(res.get("val/acc_best")),
        "test_acc": finite(res.get("test/acc")),
        "step_median_ms": finite(step_time.get("median_ms")),
        "images_per_s": finite(step_time.get("images_per_s")),
        "wall_time_s": finite(res.get("wall_time_s")),
        "error": None if results is not None else (marker or {}).get("error") or log_error,
        "_num": job_num,
        "_overrides": [str(o) for o in overrides],
    }


def read_sweep(sweep_dir: Path) -> List[Dict[str, Any]]:
    """Rows of every job, in job order; raise UserError when `sweep_dir` is not a sweep folder."""
    expected = ("expected a Hydra multirun folder (e.g. outputs/train/multiruns/<time>/) "
                "whose sub-folders are jobs holding .hydra/ (and results.json once finished)")
    if not sweep_dir.exists():
        raise UserError(f"{sweep_dir}: no such directory; {expected}")
    if not sweep_dir.is_dir():
        raise UserError(f"{sweep_dir}: not a directory; {expected}")
    if (sweep_dir / ".hydra").is_dir() and not (sweep_dir / "multirun.yaml").is_file():
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


def _is_sweep(override: str) -> bool:
    """`key=a,b` or `key=range(...)`/`choice(...)`/`glob(...)`: a comma outside brackets and quotes."""
    _, _, value = override.partition("=")
    if value.startswith(("range(", "choice(", "glob(", "interval(", "tag(")):
        return True
    depth, quote = 0, ""
    for ch in value:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[({":
            depth += 1
        elif ch in "])}":
            depth -= 1
        elif ch == "," and depth == 0:
            return True
    return False


def sweep_axes(sweep_dir: Path) -> List[str]:
    """What the sweep varies (`arch.block_order=post,pre`), from multirun.yaml: the recipe's
    hydra.sweeper.params, then the command line's sweep overrides (which win over them)."""
    multirun = _load_yaml(sweep_dir / "multirun.yaml")
    axes: Dict[str, str] = {}
    params = _get(multirun, "hydra.sweeper.params")
    if isinstance(params, Mapping):
        axes.update({str(k): f"{k}={v}" for k, v in params.items()})
    task = _get(multirun, "hydra.overrides.task")
    for override in task if isinstance(task, list) else []:
        key = str(override).partition("=")[0]
        if key in axes or _is_sweep(str(override)):
            axes[key] = str(override)
    return list(axes.values())


# ---------------------------------------------------------------------------- writing
def write_atomic(path: Path, write: Any, binary: bool = False) -> None:
    """Call `write(handle)` on a temp file next to `path`, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"newline": ""})) as handle:
            write(handle)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _csv_value(value: Any) -> Any:
    return "" if value is None else value


def write_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    def write(handle: Any) -> None:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([_csv_value(row.get(c)) for c in COLUMNS])

    write_atomic(path, write)


def _fmt_params(n: Any) -> str:
    if finite(n) is None:
        return ""
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(int(n))


def _md_cell(column: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    if column in ("val_acc_best", "test_acc"):
        return f"{100 * value:.2f}"
    if column == "params":
        return _fmt_params(value)
    if column in ("step_median_ms", "wall_time_s"):
        return f"{value:.1f}" if value >= 100 else f"{value:.2f}"
    if column == "images_per_s":
        return f"{value:.0f}" if value >= 100 else f"{value:.1f}"
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return f"`{text}`" if column == "overrides" and text else text


def markdown(rows: Sequence[Mapping[str, Any]], sweep_dir: Path, axes: Sequence[str] = ()) -> str:
    """summary.md: a header (sweep axes, overrides all jobs share), then one row per job."""
    lists = [r.get("_overrides") or [] for r in rows]
    common = [o for o in lists[0] if all(o in other for other in lists[1:])] if len(lists) > 1 else []
    columns = [c for c in COLUMNS if c != "error" or any(r.get("error") for r in rows)]
    out = io.StringIO()
    out.write(f"# Sweep {sweep_dir.name}\n\n")
    statuses: Dict[str, int] = defaultdict(int)
    for r in rows:
        statuses[r["status"]] += 1
    out.write(f"{len(rows)} jobs: " + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())) + "\n\n")
    if axes:
        out.write("Swept: " + ", ".join(f"`{a}`" for a in axes) + "\n\n")
    if common:
        out.write(f"Overrides of every job: `{' '.join(common)}`; the table shows the others.\n\n")
    out.write("| " + " | ".join(MD_HEADERS[c] for c in columns) + " |\n")
    out.write("|" + "|".join("---:" if c in ("depth", "params", "val_acc_best", "test_acc",
                                             "step_median_ms", "images_per_s", "wall_time_s")
                             else "---" for c in columns) + "|\n")
    for row, own in zip(rows, lists):
        shown = dict(row, overrides=" ".join(o for o in own if o not in common))
        out.write("| " + " | ".join(_md_cell(c, shown.get(c)) for c in columns) + " |\n")
    return out.getvalue()


# ---------------------------------------------------------------------------- entry points
def build_report(sweep_dir: str | Path, plots: bool = True) -> Report:
    """Read the sweep and write summary.csv, summary.md and (if there is data) the plots."""
    sweep_dir = Path(sweep_dir)
    rows = read_sweep(sweep_dir)
    report = Report(sweep_dir=sweep_dir, rows=rows)
    write_csv(rows, sweep_dir / SUMMARY_CSV)
    md = markdown(rows, sweep_dir, sweep_axes(sweep_dir))
    write_atomic(sweep_dir / SUMMARY_MD, lambda handle: handle.write(md))
    report.files += [sweep_dir / SUMMARY_CSV, sweep_dir / SUMMARY_MD]
    if plots:
        from resnet_exp.report_plots import write_plots  # matplotlib only when plotting

        written, report.skipped_plots = write_plots(rows, sweep_dir)
        report.files += written
    return report


def public_rows(report: Report) -> List[Dict[str, Any]]:
    """The rows without the report's private keys (for tables elsewhere, e.g. wandb)."""
    return [{c: r.get(c) for c in COLUMNS} for r in report.rows]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m resnet_exp.report",
        description="Summarise a Hydra multirun folder: summary.csv, summary.md and plots "
                    "(accuracy and step time vs depth, one line per block order) in that folder.")
    parser.add_argument("sweep_dir", help="the sweep folder, e.g. outputs/train/multiruns/<time>")
    parser.add_argument("--no-plots", action="store_true", help="write only summary.csv and summary.md")
    parser.add_argument("-q", "--quiet", action="store_true", help="do not print the table")
    args = parser.parse_args(argv)
    try:
        report = build_report(args.sweep_dir, plots=not args.no_plots)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. a sweep folder we may read but not write
        print(f"error: {args.sweep_dir}: cannot write the report: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        print((report.sweep_dir / SUMMARY_MD).read_text())
    for name in report.skipped_plots:
        print(f"no plot {name}: no completed job with a depth and that metric")
    print("wrote " + ", ".join(str(p) for p in report.files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
