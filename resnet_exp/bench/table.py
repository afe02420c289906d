"""The tables of `python -m resnet_exp.bench`: bench.csv and bench.md, in a run folder and, after a
multirun, for every job in the sweep folder (`write_sweep_tables`)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from resnet_exp.bench.timing import COLUMNS
from resnet_exp.io import write_atomic

BENCH_JSON, BENCH_CSV, BENCH_MD = "bench.json", "bench.csv", "bench.md"


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table of bench rows (also fine in a terminal)."""
    head = ["arch", "order", "device", "dtype", "batch", "image", "mode", "ms/batch (mean ± sd)",
            "median ms", "images/s", "peak MiB", "TFLOP/s", "MFU"]

    def fmt(v: Any, pattern: str) -> str:
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else pattern.format(v)

    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        cells = [str(r["arch"]), str(r["block_order"]), str(r["device"]), str(r["dtype"]),
                 str(r["batch_size"]), str(r["image_size"]), str(r["mode"]),
                 f"{float(r['mean_ms']):.2f} ± {float(r['std_ms']):.2f}", fmt(_num(r["median_ms"]), "{:.2f}"),
                 fmt(_num(r["images_per_s"]), "{:.1f}"), fmt(_num(r["peak_mem_mb"]), "{:.0f}"),
                 fmt(_num(r["tflop_per_s"]), "{:.3g}"), fmt(_num(r["mfu"]), "{:.1%}")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _num(value: Any) -> float | None:
    if value in (None, ""):
        return None
    return float(value)


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    def write(handle: IO[str]) -> None:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

    write_atomic(path, write)


def _job_number(path: Path) -> tuple:
    head = path.parent.name.split("-", 1)[0]
    return (int(head), path.parent.name) if head.isdigit() else (1 << 30, path.parent.name)


def write_sweep_tables(sweep_dir: Path) -> str | None:
    """Every job's rows of a bench multirun in one bench.csv / bench.md in `sweep_dir`; the table
    (None when no job wrote rows)."""
    rows: list[dict[str, Any]] = []
    for path in sorted(sweep_dir.glob(f"*/{BENCH_JSON}"), key=_job_number):
        rows.extend(json.loads(path.read_text())["rows"])
    if not rows:
        return None
    write_csv(sweep_dir / BENCH_CSV, rows)
    table = format_table(rows)
    write_atomic(sweep_dir / BENCH_MD, lambda handle: handle.write(table + "\n"))
    return table
