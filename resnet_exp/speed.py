"""The fast GPU path: the speed switches a run uses, decided once from the config (a null switch is on when
the run trains on CUDA), and what the device can do (sync, peak memory, peak FLOP/s, a description for
benchmark tables). No Lightning and no Hydra: `plan()` takes plain values (or DictConfigs)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import resource
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnet_exp.errors import require

# torch.compile's modes (None: its default).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

# Every precision Lightning accepts (any spelling) -> the peak kind MFU divides by: tensor-core bf16/fp16,
# "fp32" (TF32 when speed.tf32 is on), fp64; None (FP8 matmuls among bf16/fp16 ones): no single peak fits.
PRECISIONS: dict[str | int, str | None] = {
    32: "fp32", "32": "fp32", "32-true": "fp32", 64: "fp64", "64": "fp64", "64-true": "fp64",
    16: "fp16", "16": "fp16", "16-mixed": "fp16", "16-true": "fp16", "bf16": "bf16", "bf16-mixed": "bf16",
    "bf16-true": "bf16", "transformer-engine": None, "transformer-engine-float16": None,
}
# Lightning precision (any spelling) -> autocast dtype (no entry: no autocast).
AUTOCAST = {p: torch.bfloat16 if kind == "bf16" else torch.float16
            for p, kind in PRECISIONS.items() if kind in ("bf16", "fp16") and "true" not in str(p)}
# Dense peak TFLOP/s per GPU model from the vendors' data sheets (not the sparsity figures): tensor cores in
# bf16 and fp16, TF32, plain fp32 and fp64 (tensor cores where the chip has them). Not listed: no MFU.
_H100_SXM = {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9, "fp64": 66.9}
_HOPPER_NVL = {"bf16": 835.5, "fp16": 835.5, "tf32": 417.5, "fp32": 60.0, "fp64": 60.0}
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "A100": {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5, "fp64": 19.5},  # SXM and PCIe
    "H100 SXM": _H100_SXM,
    "H100 PCIe": {"bf16": 756.0, "fp16": 756.0, "tf32": 378.0, "fp32": 51.2, "fp64": 51.2},
    "H100 NVL": _HOPPER_NVL,
    "H200": _H100_SXM,
    "H200 NVL": _HOPPER_NVL,
    "GH200": _H100_SXM,
    "L4": {"bf16": 121.0, "fp16": 121.0, "tf32": 60.0, "fp32": 30.3},
    "L40": {"bf16": 181.05, "fp16": 181.05, "tf32": 90.5, "fp32": 90.5},
    "L40S": {"bf16": 362.05, "fp16": 362.05, "tf32": 183.0, "fp32": 91.6},
}
# Name tokens that fix a Hopper part's form factor (torch names the H100 SXM "H100 80GB HBM3").
_FORM_FACTORS = {"NVL": "NVL", "PCIE": "PCIe", "SXM": "SXM", "SXM5": "SXM", "HBM3": "SXM", "HBM3E": "SXM"}


def gpu_model(name: str | None) -> str | None:
    """The PEAK_TFLOPS key of a CUDA device name, matched token by token ("NVIDIA L40S" is L40S, never L4);
    None for a name not listed or a MIG slice (a fraction of the chip)."""
    tokens = [t for t in (name or "").upper().replace("-", " ").split() if t not in ("NVIDIA", "TESLA")]
    if not tokens or "MIG" in tokens:
        return None
    head = tokens[0]
    if head in ("H100", "H200"):  # one chip, several form factors with their own clocks
        forms = {_FORM_FACTORS[t] for t in tokens[1:] if t in _FORM_FACTORS}
        # torch names the H200 SXM plain "NVIDIA H200"; an H100 must say which it is.
        form = forms.pop() if len(forms) == 1 else ("SXM" if head == "H200" and not forms else "?")
        key = "H200" if (head, form) == ("H200", "SXM") else f"{head} {form}"
    else:
        key = next((k for k in PEAK_TFLOPS if k.upper() == head), "?")
    return key if key in PEAK_TFLOPS else None


def peak_kind(precision: str | int | None, tf32: bool) -> str | None:
    """The PEAK_TFLOPS column for a Lightning precision (any spelling); None if unknown."""
    kind = PRECISIONS.get(precision)  # type: ignore[arg-type]
    return "tf32" if kind == "fp32" and tf32 else kind


def gpu_peak_tflops(name: str | None, precision: str | int | None, tf32: bool) -> float | None:
    model, kind = gpu_model(name), peak_kind(precision, tf32)  # None when either is unknown
    return PEAK_TFLOPS[model].get(kind) if model and kind else None


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's RuntimeError (which has no class of its own)."""
    return (isinstance(exc, (torch.OutOfMemoryError, MemoryError))
            or "can't allocate memory" in str(exc) or "out of memory" in str(exc))


def peak_memory_mb(device: torch.device) -> float:
    """Peak allocated memory (MiB) on a CUDA device since its last reset, else the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def peak_tflops(device: torch.device, precision: str | int | None, tf32: bool) -> float | None:
    """The device's dense peak TFLOP/s for MFU (`gpu_peak_tflops`); None off CUDA."""
    return gpu_peak_tflops(torch.cuda.get_device_name(device), precision, tf32) if device.type == "cuda" else None


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
    return str(accelerator).lower() in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def require_cuda(key: str, value: str, advice: str) -> None:
    """The one-line error `key=value: no CUDA device ...; advice` when torch sees no CUDA device."""
    require(torch.cuda.is_available(), key, value,
            f"no CUDA device is available here (torch.cuda.is_available() is False); {advice}")


def check_compile_mode(mode: str | None) -> None:
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
        """Process-wide switches: TF32 for float32 matmuls AND convolutions, both ways (cuDNN's is on by
        default, and `set_float32_matmul_precision` leaves it alone)."""
        torch.set_float32_matmul_precision("high" if self.tf32 else "highest")
        torch.backends.cuda.matmul.allow_tf32 = self.tf32
        torch.backends.cudnn.allow_tf32 = self.tf32

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Channels-last weights and inputs, then torch.compile in place (`nn.Module.compile`): the same
        module object back, parameter names and checkpoints unchanged."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
            model.register_forward_pre_hook(_inputs_channels_last)
        if self.compile:
            model.compile(mode=self.compile_mode, dynamic=False)
        return model

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan(trainer: Mapping[str, Any], speed: Mapping[str, Any] | None = None) -> SpeedPlan:
    """Decide every switch from the `trainer` and `speed` config nodes (nulls resolved here)."""
    speed = speed or {}
    cuda = trains_on_cuda(trainer.get("accelerator", "auto"))

    def on(value: bool | None) -> bool:
        return cuda if value is None else bool(value)

    precision = trainer.get("precision")
    if precision is None:
        precision = "bf16-mixed" if cuda and torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"
    benchmark = trainer.get("benchmark")
    if benchmark is None:
        benchmark = cuda and not trainer.get("deterministic")
    return SpeedPlan(cuda=cuda, precision=str(precision), cudnn_benchmark=bool(benchmark),
                     channels_last=on(speed.get("channels_last")), tf32=on(speed.get("tf32")),
                     compile=bool(speed.get("compile", False)), compile_mode=speed.get("compile_mode"))


def channels_last_batch(images: torch.Tensor) -> torch.Tensor:
    """A 4-d batch in channels-last memory format; other tensors as they are."""
    return images.contiguous(memory_format=torch.channels_last) if images.dim() == 4 else images


def _inputs_channels_last(module: nn.Module, args: tuple) -> tuple | None:
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
        return (channels_last_batch(args[0]), *args[1:])
    return None
