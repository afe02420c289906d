"""The fast GPU path: which speed switches a run uses, decided once from the config, and what the
device can do (sync, peak memory, peak FLOP/s, a description for benchmark tables).

Each switch defaults to "on when the run trains on CUDA" (`null` in the config) and can be forced
either way:

- `trainer.precision` null -> `bf16-mixed` (autocast to bfloat16) on a CUDA GPU that supports it,
  else `32-true`. Any explicit Lightning precision is kept.
- `trainer.benchmark` null -> `cudnn.benchmark` on when training on CUDA and not deterministic.
- `speed.channels_last` null -> model weights and inputs in channels-last memory format on CUDA.
- `speed.tf32` null -> float32 matmuls and convolutions may use TF32 tensor cores on CUDA.
- `speed.compile` false -> `torch.compile` the backbone when true (`speed.compile_mode` picks
  the mode). Static shapes: a new batch shape compiles a new graph (use drop_last in training).

No Lightning and no Hydra here: `plan()` takes plain values (or DictConfigs read like dicts).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import platform
import resource
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnet_exp.errors import require

log = logging.getLogger(__name__)

CUDA_ACCELERATORS = ("auto", "gpu", "cuda")
# torch.compile's modes (None: its default).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

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


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation that failed for want of memory: CUDA's OutOfMemoryError, or the CPU
    allocator's RuntimeError (which has no class of its own)."""
    return (isinstance(exc, (torch.OutOfMemoryError, MemoryError))
            or "can't allocate memory" in str(exc) or "out of memory" in str(exc))


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


def trains_on_cuda(accelerator: Any) -> bool:
    """True if a trainer with this `accelerator` will put the model on a CUDA device."""
    return str(accelerator).lower() in CUDA_ACCELERATORS and torch.cuda.is_available()


def bf16_supported() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def check_compile_mode(mode: str | None) -> None:
    """The one-line `compile_mode=...` error unless `mode` is None or one of COMPILE_MODES."""
    require(mode is None or mode in COMPILE_MODES, "compile_mode", mode,
            "must be null or one of " + ", ".join(COMPILE_MODES))


@dataclass(frozen=True)
class SpeedPlan:
    """The resolved switches of one run (every value concrete)."""

    cuda: bool
    precision: str
    cudnn_benchmark: bool
    channels_last: bool
    tf32: bool
    compile: bool
    compile_mode: str | None = None

    def __post_init__(self) -> None:
        check_compile_mode(self.compile_mode)

    def trainer_kwargs(self) -> dict[str, Any]:
        """Arguments for `pytorch_lightning.Trainer` that override the config's nulls."""
        return {"precision": self.precision, "benchmark": self.cudnn_benchmark}

    def apply_backend(self) -> None:
        """Process-wide switches: TF32 for float32 matmuls AND convolutions, both ways.

        `set_float32_matmul_precision` leaves cuDNN alone (`cudnn.allow_tf32` is on by default),
        so "fp32" convolutions would still run in TF32 unless switched off here too."""
        torch.set_float32_matmul_precision("high" if self.tf32 else "highest")
        torch.backends.cuda.matmul.allow_tf32 = self.tf32
        torch.backends.cudnn.allow_tf32 = self.tf32

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Channels-last weights and inputs, then torch.compile; the same module object back
        (parameter names and checkpoints do not change)."""
        if self.channels_last:
            to_channels_last(model)
        if self.compile:
            compile_module(model, self.compile_mode)
        return model

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def plan(trainer: Mapping[str, Any], speed: Mapping[str, Any] | None = None) -> SpeedPlan:
    """Decide every switch from the `trainer` and `speed` config nodes (nulls resolved here)."""
    speed = speed or {}
    cuda = trains_on_cuda(trainer.get("accelerator", "auto"))

    def on(value: bool | None) -> bool:
        return cuda if value is None else bool(value)

    precision = trainer.get("precision")
    if precision is None:
        precision = "bf16-mixed" if cuda and bf16_supported() else "32-true"
    benchmark = trainer.get("benchmark")
    if benchmark is None:
        benchmark = cuda and not trainer.get("deterministic")
    return SpeedPlan(
        cuda=cuda,
        precision=str(precision),
        cudnn_benchmark=bool(benchmark),
        channels_last=on(speed.get("channels_last")),
        tf32=on(speed.get("tf32")),
        compile=bool(speed.get("compile", False)),
        compile_mode=speed.get("compile_mode"),
    )


def _inputs_channels_last(module: nn.Module, args: tuple) -> tuple | None:
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return None


def to_channels_last(model: nn.Module) -> nn.Module:
    """Convolution weights in channels-last format, and a hook that converts 4-d inputs too."""
    model.to(memory_format=torch.channels_last)
    model.register_forward_pre_hook(_inputs_channels_last)
    return model


def compile_module(model: nn.Module, mode: str | None = None) -> nn.Module:
    """`torch.compile` in place (`nn.Module.compile`): state-dict keys stay as they are."""
    model.compile(mode=mode, dynamic=False)
    return model


def channels_last_batch(images: torch.Tensor) -> torch.Tensor:
    return images.contiguous(memory_format=torch.channels_last) if images.dim() == 4 else images
