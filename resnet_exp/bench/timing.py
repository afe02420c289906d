"""Measuring one net for `python -m resnet_exp.bench`: FLOPs, timed batches, one row per mode.

Per mode: `burn_in` untimed batches, then `batches` timed ones on synthetic input. On CUDA each
batch is bracketed by CUDA events read after the last batch (or `timer="sync"`: a synchronize
before and after every batch); on CPU by the host clock. No Hydra here: plain arguments.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from resnet_exp import speed
from resnet_exp.io import rounded
from resnet_exp.models.complexity import count_flops
from resnet_exp.speed import AUTOCAST, peak_memory_mb, peak_tflops

log = logging.getLogger(__name__)

# The keys of a `benchmark` row, in bench.csv order.
COLUMNS = ("arch", "block_order", "device", "dtype", "batch_size", "image_size", "mode", "mean_ms",
           "std_ms", "median_ms", "min_ms", "max_ms", "images_per_s", "peak_mem_mb",
           "gflop_per_batch", "tflop_per_s", "mfu", "channels_last", "cudnn_benchmark", "compile",
           "timer", "batches", "burn_in", "params", "flops_per_image")


def make_step(model: nn.Module, mode: str, images: torch.Tensor, labels: torch.Tensor,
              autocast_dtype: torch.dtype | None) -> Callable[[], None]:
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
                 timer: str = "events") -> list[float]:
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


def benchmark(model: nn.Module, *, arch: str, block_order: str, modes: Sequence[str],
              batch_size: int, image_size: int, in_channels: int, num_classes: int,
              device: torch.device, plan: speed.SpeedPlan, burn_in: int, batches: int,
              timer: str = "events", count: bool = True, peak: float | None = None,
              seed: int = 0) -> list[dict[str, Any]]:
    """One row per mode: time per batch (mean, sd, median, min, max), images/s, peak memory,
    FLOPs and achieved TFLOP/s (and MFU when the device's peak is known)."""
    torch.manual_seed(seed)
    shape = (batch_size, in_channels, image_size, image_size)
    # Per image, as results.json counts it (`count_flops` on one image); a batch is that x batch_size.
    per_image = {m: count_flops(model, (1, *shape[1:]), m) if count else None for m in modes}
    flops = {m: per_image[m] * batch_size if per_image[m] else None for m in modes}
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
            "mean_ms": rounded(ms.mean()), "std_ms": rounded(ms.std()), "median_ms": rounded(np.median(ms)),
            "min_ms": rounded(ms.min()), "max_ms": rounded(ms.max()),
            "images_per_s": rounded(batch_size / mean_s, 1),
            "peak_mem_mb": rounded(peak_memory_mb(device), 1),
            "gflop_per_batch": rounded(flops[mode] / 1e9 if flops[mode] else None, 2),
            "tflop_per_s": rounded(tflops, 6),
            "mfu": rounded(tflops / peak if tflops and peak else None, 4),
            "channels_last": plan.channels_last, "cudnn_benchmark": plan.cudnn_benchmark,
            "compile": plan.compile, "timer": timer if device.type == "cuda" else "host",
            "batches": batches, "burn_in": burn_in, "params": params, "flops_per_image": per_image[mode],
        })
    return rows
