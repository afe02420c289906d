"""Parameter and FLOP counts (torch.utils.flop_counter's: 1 multiply-add = 2 FLOPs) on the meta device.
Units 2..n of a stage are identical, so a net with at most two units per stage gives the exact totals."""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from resnet_exp.models.options import ArchSpec, BlockOrder
from resnet_exp.models.resnet import ResNet

log = logging.getLogger(__name__)
FLOP_MODES = ("forward", "forward_backward", "train")


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _short_net(spec: ArchSpec, num_classes: int, in_channels: int, **kw: Any) -> tuple[ResNet, list[tuple[str, int]]]:
    """The net of `spec` on meta with at most two units per stage, and for each longer stage its second
    unit's name with how many more units it stands for."""
    with torch.device("meta"):
        net = ResNet(dataclasses.replace(spec, blocks=tuple(min(n, 2) for n in spec.blocks)), num_classes,
                     in_channels, **kw).eval()
    return net, [(f"{name}.1", n - 2) for name, n in zip(net.stage_names, spec.blocks) if n > 2]


def complexity(spec: ArchSpec, num_classes: int = 1000, in_channels: int = 3, size: int = 224) -> tuple[int, int]:
    """(parameters, FLOPs for one `size` x `size` image) of the full net described by `spec`."""
    net, more = _short_net(spec, num_classes, in_channels)
    params = _params(net) + sum(k * _params(net.get_submodule(unit)) for unit, k in more)
    # Norms, activations and drop-path add no counted FLOPs: v2 aliases and block orders share
    # the count of their v1 arch, so it is computed once.
    conv_only = dataclasses.replace(spec, name="", block_order=BlockOrder.post, zero_init_last=False, drop_path=0.0)
    return params, _conv_flops(conv_only, num_classes, in_channels, size)


@functools.lru_cache(maxsize=256)
def _conv_flops(spec: ArchSpec, num_classes: int, in_channels: int, size: int) -> int:
    # FlopCounterMode counts no norm FLOPs, and BN on meta is slow (decomposed op by op).
    net, more = _short_net(spec, num_classes, in_channels, norm_layer=lambda c: nn.Identity())
    # Forward outside the device context: its per-op dispatch overhead dominates otherwise.
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.empty(1, in_channels, size, size, device="meta"))
    per_module = counter.get_flop_counts()
    return counter.get_total_flops() + sum(k * sum(per_module[f"ResNet.{unit}"].values()) for unit, k in more)


def count_flops(model: nn.Module, input_shape: Sequence[int], mode: str) -> int | None:
    """FLOPs of one batch of `mode` on a meta copy of the model: the forward pass, or for the training
    modes forward and backward as autograd runs them (no input gradient). In eval mode: norms add no
    counted FLOPs either way, and train-mode BatchNorm refuses one image at a 1x1 feature map."""
    if mode not in FLOP_MODES:
        raise ValueError(f"mode={mode}: one of {', '.join(FLOP_MODES)}")
    try:
        meta = copy.deepcopy(model).to("meta").eval()
        images = torch.empty(*input_shape, device="meta")
        with FlopCounterMode(display=False) as counter:
            if mode == "forward":
                with torch.no_grad():
                    meta(images)
            else:
                logits = meta(images)
                labels = torch.zeros(input_shape[0], dtype=torch.long, device="meta")
                nn.functional.cross_entropy(logits, labels).backward()
        return int(counter.get_total_flops())
    except Exception:  # an op without a meta kernel: report no FLOPs rather than fail
        log.warning("could not count FLOPs for mode %s", mode, exc_info=True)
        return None


def train_flops_per_image(model: nn.Module, input_shape: Sequence[int]) -> int | None:
    """Training FLOPs (forward + backward, `count_flops`) of one image of shape `input_shape` (C, H, W)."""
    return count_flops(model, (1, *input_shape), "train")
