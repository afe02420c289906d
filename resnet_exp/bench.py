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

import contextlib
import copy
import csv
import datetime as dt
import json
import logging
import math
import platform
import resource
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig
from torch import nn

from resnet_exp import speed
from resnet_exp.cli import run_hydra_app
from resnet_exp.config import register_schemas, validate
from resnet_exp.errors import ConfigError
from resnet_exp.results import write_json_atomic

log = logging.getLogger(__name__)

BENCH_JSON, BENCH_CSV, BENCH_MD = "bench.json", "bench.csv", "bench.md"
PRECISIONS = {"auto": None, "fp32": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed"}
AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
COLUMNS = ("arch", "block_order", "device", "dtype", "batch_size", "image_size", "mode", "mean_ms",
           "std_ms", "median_ms", "min_ms", "max_ms", "images_per_s", "peak_mem_mb",
           "gflop_per_batch", "tflop_per_s", "mfu", "channels_last", "cudnn_benchmark", "compile",
           "timer", "batches", "burn_in", "params")
# Dense peak TFLOP/s by device name (bf16/fp16 tensor cores, TF32, plain fp32), from the vendors'
# data sheets (without sparsity). MFU is left empty for devices not listed: pass bench.peak_tflops.
PEAK_TFLOPS = (
    ("H200", {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    ("H100 PCIe", {"bf16": 756.0, "tf32": 378.0, "fp32": 51.2}),
    ("H100 NVL", {"bf16": 835.0, "tf32": 417.5, "fp32": 60.0}),
    ("H100", {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    ("A100", {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    ("L4", {"bf16": 121.0, "tf32": 60.0, "fp32": 30.3}),
)


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


def peak_tflops(device: torch.device, precision: str, tf32: bool) -> Optional[float]:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    kind = "bf16" if precision in AUTOCAST else ("tf32" if tf32 else "fp32")
    for key, peaks in PEAK_TFLOPS:
        if key in name:
            return peaks[kind]
    return None


# ---------------------------------------------------------------------------- measuring
def count_flops(model: nn.Module, input_shape: Sequence[int], mode: str) -> Optional[int]:
    """FLOPs of one batch of `mode` (forward; forward + backward for the training modes), counted
    by torch.utils.flop_counter on a copy of the model on the meta device (nothing computed)."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        meta = copy.deepcopy(model).to("meta")
        images = torch.empty(*input_shape, device="meta")
        with FlopCounterMode(display=False) as counter:
            if mode == "forward":
                meta.eval()
                with torch.no_grad():
                    meta(images)
            else:
                meta.train()
                logits = meta(images)
                labels = torch.zeros(input_shape[0], dtype=torch.long, device="meta")
                nn.functional.cross_entropy(logits, labels).backward()
        return int(counter.get_total_flops())
    except Exception:  # an op without a meta kernel: report no FLOPs rather than fail
        log.warning("could not count FLOPs for mode %s", mode, exc_info=True)
        return None


def make_step(model: nn.Module, mode: str, images: torch.Tensor, labels: torch.Tensor,
              autocast_dtype: Optional[torch.dtype]) -> Callable[[], None]:
    """A closure that runs one batch of `mode`."""
    device_type = images.device.type
    criterion = nn.CrossEntropyLoss()
    if mode == "forward":
        model.eval()

        def step() -> None:
            with torch.inference_mode(), torch.autocast(device_type, autocast_dtype or torch.float32,
                                                        enabled=autocast_dtype is not None):
                model(images)
        return step

    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9) if mode == "train" else None

    def train_step() -> None:
        model.zero_grad(set_to_none=True)
        with torch.autocast(device_type, autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            loss = criterion(model(images), labels)
        loss.backward()
        if optimizer is not None:
            optimizer.step()
    return train_step


def time_batches(step: Callable[[], None], device: torch.device, burn_in: int, batches: int,
                 timer: str = "events") -> List[float]:
    """Milliseconds of each of `batches` timed calls of `step`, after `burn_in` untimed ones."""
    cuda = device.type == "cuda"
    for _ in range(burn_in):
        step()
    if not cuda:
        times = []
        for _ in range(batches):
            start = time.perf_counter()
            step()
            times.append((time.perf_counter() - start) * 1e3)
        return times
    torch.cuda.synchronize(device)
    if timer == "sync":
        times = []
        for _ in range(batches):
            torch.cuda.synchronize(device)
            start = time.perf_counter()
            step()
            torch.cuda.synchronize(device)
            times.append((time.perf_counter() - start) * 1e3)
        return times
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(batches)]
    for start, end in events:
        start.record()
        step()
        end.record()
    torch.cuda.synchronize(device)
    return [start.elapsed_time(end) for start, end in events]


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS


def _r(value: Optional[float], digits: int = 3) -> Optional[float]:
    return None if value is None else round(float(value), digits)


def benchmark(model: nn.Module, *, arch: str, block_order: str, modes: Sequence[str],
              batch_size: int, image_size: int, in_channels: int, num_classes: int,
              device: torch.device, plan: speed.SpeedPlan, burn_in: int, batches: int,
              timer: str = "events", count: bool = True, peak: Optional[float] = None,
              seed: int = 0) -> List[Dict[str, Any]]:
    """One row per mode: time per batch (mean, sd, median, min, max), images/s, peak memory,
    FLOPs and achieved TFLOP/s (and MFU when the device's peak is known)."""
    torch.manual_seed(seed)
    shape = (batch_size, in_channels, image_size, image_size)
    flops = {m: count_flops(model, shape, m) if count else None for m in modes}
    params = sum(p.numel() for p in model.parameters())
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = plan.cudnn_benchmark
    plan.apply_backend()
    model = plan.prepare_model(model.to(device))
    images = torch.randn(shape, device=device)
    if plan.channels_last:
        images = speed.channels_last_batch(images)
    labels = torch.randint(0, num_classes, (batch_size,), device=device)
    autocast_dtype = AUTOCAST.get(plan.precision)
    peak = peak if peak is not None else peak_tflops(device, plan.precision, plan.tf32)
    rows = []
    for mode in modes:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        step = make_step(model, mode, images, labels, autocast_dtype)
        ms = np.asarray(time_batches(step, device, burn_in, batches, timer))
        mean_s = ms.mean() / 1e3
        tflops = flops[mode] / mean_s / 1e12 if flops[mode] else None
        rows.append({
            "arch": arch, "block_order": block_order,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "dtype": "bf16" if autocast_dtype == torch.bfloat16 else "fp16" if autocast_dtype else "fp32",
            "batch_size": batch_size, "image_size": image_size, "mode": mode,
            "mean_ms": _r(ms.mean()), "std_ms": _r(ms.std()), "median_ms": _r(np.median(ms)),
            "min_ms": _r(ms.min()), "max_ms": _r(ms.max()),
            "images_per_s": _r(batch_size / mean_s, 1),
            "peak_mem_mb": _r(peak_memory_mb(device), 1),
            "gflop_per_batch": _r(flops[mode] / 1e9 if flops[mode] else None, 2),
            "tflop_per_s": _r(tflops, 6),
            "mfu": _r(tflops / peak if tflops and peak else None, 4),
            "channels_last": plan.channels_last, "cudnn_benchmark": plan.cudnn_benchmark,
            "compile": plan.compile, "timer": timer if device.type == "cuda" else "host",
            "batches": batches, "burn_in": burn_in, "params": params,
        })
    return rows


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
@contextlib.contextmanager
def discard_run_dir_on_error(run_dir: Path) -> Iterator[None]:
    """If the checks fail, remove the run folder when it holds only Hydra's own files."""
    try:
        yield
    except BaseException:
        if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {".hydra", "bench.log"}:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def build_model(cfg: DictConfig) -> nn.Module:
    from hydra.utils import instantiate

    b = cfg.bench
    return instantiate(cfg.arch, num_classes=b.num_classes, in_channels=b.in_channels,
                       input_size=b.image_size)


@hydra.main(version_base="1.3", config_path="../conf", config_name="bench")
def bench(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    with discard_run_dir_on_error(run_dir):
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
