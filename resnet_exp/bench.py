"""Time forward / training steps of one architecture on synthetic input: `python -m resnet_exp.bench`.

    python -m resnet_exp.bench arch=resnet152 arch.block_order=pre bench.batch_size=32 \
        bench.image_size=224 'bench.mode=[forward,train]'
    python -m resnet_exp.bench -m arch=resnet50v2,resnet101v2,resnet152v2,resnet200v2   # one table

Per mode: `bench.burn_in` untimed batches, then `bench.batches` timed ones. On CUDA each batch is
bracketed by CUDA events read after the last batch (or `bench.timer=sync`: a synchronize before and
after every batch). Writes bench.json and bench.csv into the run folder; a multirun also writes
bench.csv and bench.md with every job's rows into the sweep folder and prints them as one table.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import math
import platform
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig
from torch import nn

from resnet_exp import speed
from resnet_exp.bench_timing import COLUMNS, benchmark
from resnet_exp.cli import CONF_DIR, discard_run_dir_on_error, run_hydra_app
from resnet_exp.config import register_schemas, validate
from resnet_exp.errors import ConfigError
from resnet_exp.results import write_json_atomic

log = logging.getLogger(__name__)

BENCH_JSON, BENCH_CSV, BENCH_MD = "bench.json", "bench.csv", "bench.md"
PRECISIONS = {"auto": None, "fp32": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed"}



# ---------------------------------------------------------------------------- checks
def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("bench.device=cuda: no CUDA device is available here "
                          "(torch.cuda.is_available() is False); use bench.device=cpu or auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def min_image_size(spec: Any) -> int:
    """The smallest image side the net sees whole: the stem kernel, and one pixel per position of
    the last feature map (image / total stride >= 1)."""
    total = spec.stem_stride * (2 if spec.stem_pool else 1)
    for stride in spec.strides:
        total *= stride
    return max(spec.stem_kernel, total)


def check_image_size(spec: Any, image_size: int) -> None:
    need = min_image_size(spec)
    if image_size < need:
        pool = " + 3x3/2 max-pool" if spec.stem_pool else ""
        raise ConfigError(
            f"bench.image_size={image_size}: too small for {spec.name} (stem {spec.stem_kernel}x"
            f"{spec.stem_kernel}/{spec.stem_stride}{pool}); use bench.image_size >= {need}")


# ---------------------------------------------------------------------------- output
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


def _num(value: Any) -> Optional[float]:
    if value in (None, ""):
        return None
    return float(value)


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def environment() -> Dict[str, Any]:
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }


def _job_number(path: Path) -> tuple:
    head = path.parent.name.split("-", 1)[0]
    return (int(head), path.parent.name) if head.isdigit() else (1 << 30, path.parent.name)


class SweepTable(HydraCallback):
    """After a multirun: every job's rows in one bench.csv / bench.md in the sweep folder, printed."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        rows: List[Dict[str, Any]] = []
        jobs = [p for p in sweep_dir.glob(f"*/{BENCH_JSON}")]
        for path in sorted(jobs, key=_job_number):
            rows.extend(json.loads(path.read_text())["rows"])
        if not rows:
            return
        write_csv(sweep_dir / BENCH_CSV, rows)
        table = format_table(rows)
        (sweep_dir / BENCH_MD).write_text(table + "\n")
        print(f"\n{table}\n\nall jobs: {sweep_dir / BENCH_CSV}", flush=True)


# ---------------------------------------------------------------------------- entry point
def build_model(cfg: DictConfig) -> nn.Module:
    from hydra.utils import instantiate

    b = cfg.bench
    return instantiate(cfg.arch, num_classes=b.num_classes, in_channels=b.in_channels,
                       input_size=b.image_size)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="bench")
def bench(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    with discard_run_dir_on_error():
        validate(cfg, groups=("arch", "bench", "speed"))
        b = cfg.bench
        device = resolve_device(b.device.value if hasattr(b.device, "value") else str(b.device))
        model = build_model(cfg)
        check_image_size(model.spec, b.image_size)
        precision = PRECISIONS[str(getattr(b.precision, "value", b.precision))]
        plan = speed.plan({"accelerator": device.type, "precision": precision,
                           "benchmark": b.cudnn_benchmark}, cfg.speed)
    arch = HydraConfig.get().runtime.choices.get("arch") or cfg.arch.name
    modes = [str(getattr(m, "value", m)) for m in b.mode]
    order = getattr(model.spec.block_order, "value", str(model.spec.block_order))
    log.info("bench %s (%s) on %s: %s, %s", arch, order, device, plan, modes)
    rows = benchmark(model, arch=str(cfg.arch.name), block_order=order, modes=modes,
                     batch_size=b.batch_size, image_size=b.image_size, in_channels=b.in_channels,
                     num_classes=b.num_classes, device=device, plan=plan, burn_in=b.burn_in,
                     batches=b.batches, timer=str(getattr(b.timer, "value", b.timer)),
                     count=b.count_flops, peak=b.peak_tflops, seed=b.seed)
    payload = {"environment": environment(), "speed": plan.as_dict(),
               "overrides": list(HydraConfig.get().overrides.task), "rows": rows}
    write_json_atomic(run_dir / BENCH_JSON, payload)
    write_csv(run_dir / BENCH_CSV, rows)
    print(format_table(rows), flush=True)
    log.info("bench results: %s", run_dir / BENCH_JSON)


def main() -> None:
    register_schemas()
    run_hydra_app(bench)


if __name__ == "__main__":
    main()
