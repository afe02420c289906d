"""The tables of `python -m resnet_exp.bench`: bench.csv and bench.md, in a run folder and, after a multirun,
for every job in the sweep folder."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from resnet_exp.io import md_table, write_atomic, write_csv

BENCH_JSON, BENCH_CSV, BENCH_MD = "bench.json", "bench.csv", "bench.md"
# The Markdown table's number columns: heading, row key, format.
NUMBERS = (("median ms", "median_ms", "{:.2f}"), ("images/s", "images_per_s", "{:.1f}"),
           ("peak MiB", "peak_mem_mb", "{:.0f}"), ("TFLOP/s", "tflop_per_s", "{:.3g}"), ("MFU", "mfu", "{:.1%}"))


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table of bench rows (also fine in a terminal); a missing number (None, "", NaN) is left empty."""
    head = ["arch", "order", "device", "dtype", "batch", "image", "mode", "ms/batch (mean ± sd)",
            *(heading for heading, _, _ in NUMBERS)]
    table = []
    for r in rows:
        cells = [str(r[k]) for k in ("arch", "block_order", "device", "dtype", "batch_size", "image_size", "mode")]
        cells.append(f"{float(r['mean_ms']):.2f} ± {float(r['std_ms']):.2f}")
        cells += ["" if r[k] in (None, "") or math.isnan(float(r[k])) else f.format(float(r[k])) for _, k, f in NUMBERS]
        table.append(cells)
    return md_table(head, "l" * len(head), table).rstrip("\n")


def write_bench_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Bench rows (at least one) as a CSV, its columns the keys of the first row."""
    write_csv(path, list(rows[0]), ([row.get(key) for key in rows[0]] for row in rows))


def sweep_rows(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every job's rows of a bench multirun, in job order."""
    def job_order(path: Path) -> tuple[int, str]:
        number = path.parent.name.split("-", 1)[0]
        return int(number) if number.isdigit() else 1 << 30, path.parent.name

    return [row for path in sorted(sweep_dir.glob(f"*/{BENCH_JSON}"), key=job_order)
            for row in json.loads(path.read_text())["rows"]]


def write_sweep_tables(sweep_dir: Path) -> str | None:
    """`sweep_rows` in one bench.csv / bench.md in `sweep_dir`; the table (None when no job wrote rows)."""
    rows = sweep_rows(sweep_dir)
    if not rows:
        return None
    write_bench_csv(sweep_dir / BENCH_CSV, rows)
    table = format_table(rows)
    write_atomic(sweep_dir / BENCH_MD, lambda handle: handle.write(table + "\n"))
    return table
