"""Time forward / training steps of one architecture on synthetic input: `python -m resnet_exp.bench` writes
bench.json and bench.csv into the run folder (`-m`: also every job's rows in one table, in the sweep folder).
Per mode: `bench.burn_in` untimed batches, then `bench.batches` timed ones (`time_batches`).

    python -m resnet_exp.bench -m arch=resnet50v2,resnet101v2 bench.batch_size=32 'bench.mode=[forward,train]'
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from resnet_exp import speed
from resnet_exp.app.cli import run_hydra_app
from resnet_exp.app.run_dir import RunFolder
from resnet_exp.bench.table import BENCH_CSV, BENCH_JSON, format_table, write_bench_csv
from resnet_exp.config import CONF_DIR, register_schemas, validate
from resnet_exp.errors import ConfigError
from resnet_exp.io import rounded, write_json_atomic
from resnet_exp.models.complexity import count_flops as model_flops  # `count_flops` is a switch of `benchmark`

log = logging.getLogger(__name__)

# bench.precision -> Lightning's precision (None: `speed.plan` chooses).
PRECISIONS = {"auto": None, "fp32": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed"}


def make_step(model: nn.Module, mode: str, images: torch.Tensor, labels: torch.Tensor,
              autocast_dtype: torch.dtype | None) -> Callable[[], None]:
    """A closure that runs one batch of `mode`: inference, forward and backward in train mode, or a training step."""
    model.train(mode != "forward")
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9) if mode == "train" else None

    def step() -> None:
        autocast = torch.autocast(images.device.type, autocast_dtype or torch.float32,
                                  enabled=autocast_dtype is not None)
        if mode == "forward":
            with torch.inference_mode(), autocast:
                model(images)
            return
        model.zero_grad(set_to_none=True)
        with autocast:
            loss = nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        if optimizer is not None:
            optimizer.step()
    return step


def time_batches(step: Callable[[], None], device: torch.device, burn_in: int, batches: int,
                 timer: str = "events") -> list[float]:
    """Milliseconds of each of `batches` timed calls of `step`, after `burn_in` untimed ones: on CUDA by events
    read after the last batch (or with `timer="sync"`, a synchronize before and after each), else host time."""
    for _ in range(burn_in):
        step()
    speed.synchronize(device)
    if device.type == "cuda" and timer != "sync":
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(batches)]
        for start, end in events:
            start.record()
            step()
            end.record()
        speed.synchronize(device)
        return [start.elapsed_time(end) for start, end in events]
    times = []
    for _ in range(batches):
        speed.synchronize(device)
        start = time.perf_counter()
        step()
        speed.synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def benchmark(model: nn.Module, *, arch: str, block_order: str, device: torch.device, plan: speed.SpeedPlan,
              mode: Sequence[str], batch_size: int, image_size: int, in_channels: int, num_classes: int, burn_in: int,
              batches: int, timer: str = "events", count_flops: bool = True, peak_tflops: float | None = None,
              seed: int = 0) -> list[dict[str, Any]]:
    """One row per mode, its keys bench.csv's columns in order: time per batch (mean, sd, median, min, max),
    images/s, peak memory, FLOPs and achieved TFLOP/s (and MFU when the device's peak is known)."""
    torch.manual_seed(seed)
    cuda = device.type == "cuda"
    shape = (batch_size, in_channels, image_size, image_size)
    # Per image, as results.json counts it (`count_flops` on one image); a batch is that x batch_size.
    per_image = {m: model_flops(model, (1, *shape[1:]), m) if count_flops else None for m in mode}
    params = sum(p.numel() for p in model.parameters())
    if cuda:
        torch.backends.cudnn.benchmark = plan.cudnn_benchmark
    plan.apply_backend()
    model = plan.prepare_model(model.to(device))
    images = torch.randn(shape, device=device)
    if plan.channels_last:
        images = speed.channels_last_batch(images)
    labels = torch.randint(0, num_classes, (batch_size,), device=device)
    autocast_dtype = speed.AUTOCAST.get(plan.precision)
    peak = peak_tflops if peak_tflops is not None else speed.peak_tflops(device, plan.precision, plan.tf32)
    rows = []
    for m in mode:
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        step = make_step(model, m, images, labels, autocast_dtype)
        ms = np.asarray(time_batches(step, device, burn_in, batches, timer))
        mean_s = ms.mean() / 1e3
        flops = per_image[m] * batch_size if per_image[m] else None
        tflops = flops / mean_s / 1e12 if flops else None
        rows.append({
            "arch": arch, "block_order": block_order,
            "device": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
            "dtype": "bf16" if autocast_dtype == torch.bfloat16 else "fp16" if autocast_dtype else "fp32",
            "batch_size": batch_size, "image_size": image_size, "mode": m,
            "mean_ms": rounded(ms.mean()), "std_ms": rounded(ms.std()), "median_ms": rounded(np.median(ms)),
            "min_ms": rounded(ms.min()), "max_ms": rounded(ms.max()), "images_per_s": rounded(batch_size / mean_s, 1),
            "peak_mem_mb": rounded(speed.peak_memory_mb(device), 1),
            "gflop_per_batch": rounded(flops / 1e9 if flops else None, 2), "tflop_per_s": rounded(tflops, 6),
            "mfu": rounded(tflops / peak if tflops and peak else None, 4),
            "channels_last": plan.channels_last, "cudnn_benchmark": plan.cudnn_benchmark, "compile": plan.compile,
            "timer": timer if cuda else "host", "batches": batches, "burn_in": burn_in, "params": params,
            "flops_per_image": per_image[m],
        })
    return rows


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="bench")
def bench(cfg: DictConfig) -> None:
    with RunFolder() as folder:  # nothing is written until the timings exist
        validate(cfg, groups=("arch", "bench", "speed"))
        b = OmegaConf.to_container(cfg.bench, resolve=True, enum_to_str=True)  # enums' names are their values
        if b["device"] == "auto":
            b["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        elif b["device"] == "cuda":
            speed.require_cuda("bench.device", "cuda", "use bench.device=cpu or auto")
        device = torch.device(b.pop("device"))
        model = instantiate(cfg.arch, num_classes=b["num_classes"], in_channels=b["in_channels"],
                            input_size=b["image_size"])
        spec = model.spec
        spec.check_input_size("bench.image_size", b["image_size"])
        plan = speed.plan({"accelerator": device.type, "precision": PRECISIONS[b.pop("precision")],
                           "benchmark": b.pop("cudnn_benchmark")}, cfg.speed)
        arch = HydraConfig.get().runtime.choices.get("arch") or cfg.arch.name
        order = getattr(spec.block_order, "value", str(spec.block_order))
        log.info("bench %s (%s) on %s: %s, %s", arch, order, device, plan, b["mode"])
        try:
            rows = benchmark(model, arch=str(cfg.arch.name), block_order=order, device=device, plan=plan, **b)
        except (RuntimeError, MemoryError) as exc:  # CPU allocation failures are plain RuntimeErrors
            if not speed.is_out_of_memory(exc):
                raise
            raise ConfigError(f"bench.batch_size={b['batch_size']}: a batch of {b['image_size']}x{b['image_size']} "
                              f"images does not fit in {device.type} memory; "
                              "lower bench.batch_size or bench.image_size") from None
        folder.set_up()
        write_json_atomic(folder.path / BENCH_JSON, {"environment": speed.environment(), "speed": plan.as_dict(),
                                                     "overrides": list(HydraConfig.get().overrides.task), "rows": rows})
        write_bench_csv(folder.path / BENCH_CSV, rows)
        print(format_table(rows), flush=True)
        log.info("bench results: %s", folder.path / BENCH_JSON)


def main() -> None:
    register_schemas()
    run_hydra_app(bench)


if __name__ == "__main__":
    main()
