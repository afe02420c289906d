"""The fast GPU path: which speed switches a run uses, decided once from the config.

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
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from resnet_exp.config.speed import COMPILE_MODES

log = logging.getLogger(__name__)

CUDA_ACCELERATORS = ("auto", "gpu", "cuda")


def trains_on_cuda(accelerator: Any) -> bool:
    """True if a trainer with this `accelerator` will put the model on a CUDA device."""
    return str(accelerator).lower() in CUDA_ACCELERATORS and torch.cuda.is_available()


def bf16_supported() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


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
    mode = speed.get("compile_mode")
    if mode is not None and mode not in COMPILE_MODES:
        raise ValueError(f"compile_mode={mode}: must be one of {', '.join(COMPILE_MODES)}")
    return SpeedPlan(
        cuda=cuda,
        precision=str(precision),
        cudnn_benchmark=bool(benchmark),
        channels_last=on(speed.get("channels_last")),
        tf32=on(speed.get("tf32")),
        compile=bool(speed.get("compile", False)),
        compile_mode=mode,
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
