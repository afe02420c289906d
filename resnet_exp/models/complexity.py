"""Parameter and FLOP counts (torch.utils.flop_counter's: 1 multiply-add = 2 FLOPs) on the meta device.
Units 2..n of a stage are identical, so a net with at most two units per stage gives the exact totals."""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from resnet_exp.models.options import ArchSpec
from resnet_exp.models.resnet import ResNet

log = logging.getLogger(__name__)
FLOP_MODES = ("forward", "forward_backward", "train")


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _counted(model: nn.Module, images: torch.Tensor, train: bool = False) -> FlopCounterMode:
    """The FLOP counter of one forward pass of `model`, and in `train` of its backward pass too."""
    with FlopCounterMode(display=False) as counter, torch.set_grad_enabled(train):
        logits = model(images)
        if train:
            labels = torch.zeros(images.shape[0], dtype=torch.long, device=images.device)
            F.cross_entropy(logits, labels).backward()
    return counter


def complexity(spec: ArchSpec, num_classes: int = 1000, in_channels: int = 3, size: int = 224) -> tuple[int, int]:
    """(parameters, FLOPs for one `size` x `size` image) of the full net described by `spec`."""
    with torch.device("meta"):  # at most two units per stage: the second stands for units 2..n
        net = ResNet(dataclasses.replace(spec, blocks=tuple(min(n, 2) for n in spec.blocks)), num_classes,
                     in_channels).eval()
    # Forward outside the device context: its per-op dispatch overhead dominates otherwise.
    counter = _counted(net, torch.empty(1, in_channels, size, size, device="meta"))
    per_module = counter.get_flop_counts()  # "ResNet.layer1.1": the second unit of layer1
    more = [(f"{name}.1", n - 2) for name, n in zip(net.stage_names, spec.blocks) if n > 2]
    params = _params(net) + sum(k * _params(net.get_submodule(unit)) for unit, k in more)
    return params, counter.get_total_flops() + sum(k * sum(per_module[f"ResNet.{unit}"].values()) for unit, k in more)


def count_flops(model: nn.Module, input_shape: Sequence[int], mode: str) -> int | None:
    """FLOPs of one batch of `mode` on a meta copy of the model: the forward pass, or for the training
    modes forward and backward as autograd runs them (no input gradient). In eval mode: norms add no
    counted FLOPs either way, and train-mode BatchNorm refuses one image at a 1x1 feature map."""
    if mode not in FLOP_MODES:
        raise ValueError(f"mode={mode}: one of {', '.join(FLOP_MODES)}")
    try:
        meta = copy.deepcopy(model).to("meta").eval()
        return int(_counted(meta, torch.empty(*input_shape, device="meta"), mode != "forward").get_total_flops())
    except Exception:  # an op without a meta kernel: report no FLOPs rather than fail
        log.warning("could not count FLOPs for mode %s", mode, exc_info=True)
        return None


def train_flops_per_image(model: nn.Module, input_shape: Sequence[int]) -> int | None:
    """Training FLOPs (forward + backward, `count_flops`) of one image of shape `input_shape` (C, H, W)."""
    return count_flops(model, (1, *input_shape), "train")
