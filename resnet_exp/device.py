"""What this machine is and what it can do: device sync, peak memory, peak FLOP/s, a description
for benchmark tables. Pure PyTorch; one place for the small helpers every timer needs."""

from __future__ import annotations

import datetime as dt
import os
import platform
import resource
from pathlib import Path
from typing import Any

import torch

# Lightning precision -> autocast dtype (no entry: plain fp32, no autocast).
AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
# Dense peak TFLOP/s by device name (bf16/fp16 tensor cores, TF32, plain fp32), from the vendors'
# data sheets (without sparsity). MFU is left empty for devices not listed.
PEAK_TFLOPS = (
    ("H200", {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    ("H100 PCIe", {"bf16": 756.0, "tf32": 378.0, "fp32": 51.2}),
    ("H100 NVL", {"bf16": 835.0, "tf32": 417.5, "fp32": 60.0}),
    ("H100", {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    ("A100", {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    ("L4", {"bf16": 121.0, "tf32": 60.0, "fp32": 30.3}),
)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op off CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def host_peak_rss_mb() -> float:
    """Peak resident memory of this process, the CPU stand-in for peak device memory."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def peak_memory_mb(device: torch.device) -> float:
    """Peak allocated memory on a CUDA device since its last reset, else the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return host_peak_rss_mb()


def peak_tflops(device: torch.device, precision: str, tf32: bool) -> float | None:
    """The device's dense peak TFLOP/s for MFU; None off CUDA or for a device not in PEAK_TFLOPS."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    kind = "bf16" if precision in AUTOCAST else ("tf32" if tf32 else "fp32")
    for key, peaks in PEAK_TFLOPS:
        if key in name:
            return peaks[kind]
    return None


def rounded(value: float | None, digits: int = 4) -> float | None:
    """A float rounded for files and tables; None stays None."""
    return None if value is None else round(float(value), digits)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """The machine and software a measurement was taken on, for benchmark files."""
    import pytorch_lightning as pl

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "host": platform.node(), "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
        "cpu_threads": torch.get_num_threads(), "load": f"{load:.1f}",
        "torch": torch.__version__, "cuda": torch.version.cuda, "lightning": pl.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
