"""The zoo's knobs: `ArchOptions` for `create_model` and the `arch` config schema alike, and the `ArchSpec` that
`resolve` makes of them. String knobs are `str` enums: members and plain strings are interchangeable."""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from resnet_exp.errors import is_number, require


class BlockOrder(str, Enum):
    """Where BN and ReLU sit in a residual unit (He et al. 2016, "Identity Mappings", Fig. 4)."""

    post = "post"  # (a) conv-bn-relu-conv-bn, add, relu: ResNet v1
    bn_after_add = "bn_after_add"  # (b) conv-bn-relu-conv, add, bn, relu
    relu_before_add = "relu_before_add"  # (c) conv-bn-relu-conv-bn-relu, add
    relu_only_pre = "relu_only_pre"  # (d) relu-conv-bn-relu-conv-bn, add
    pre = "pre"  # (e) bn-relu-conv-bn-relu-conv, add: ResNet v2
    relu_before_and_after_add = "relu_before_and_after_add"  # not in Fig. 4: (c), add, relu


class Stem(str, Enum):
    """The layers before the first stage."""

    auto = "auto"  # cifar for inputs <= 64 px, else imagenet
    imagenet = "imagenet"  # 7x7/2 conv + 3x3/2 max-pool
    cifar = "cifar"  # 3x3/1 conv, no pool
    custom = "custom"  # stem_kernel / stem_stride / stem_padding / stem_width / stem_pool


class Shortcut(str, Enum):
    """Shortcut options of He et al. 2015, Sec. 4.1."""

    A = "A"  # identity; zero-padded channels and strided subsampling when the shape changes
    B = "B"  # identity; 1x1 projection only when the shape changes
    C = "C"  # 1x1 projection in every block


class BlockType(str, Enum):
    """The residual unit: two 3x3 convs, or 1x1-3x3-1x1."""

    basic = "basic"
    bottleneck = "bottleneck"


class Init(str, Enum):
    """How the weights start (norms always at scale 1, shift 0)."""

    kaiming = "kaiming"  # Kaiming normal (fan_out) convs, PyTorch's default head (as torchvision)
    xavier = "xavier"  # Glorot-uniform convs and head, zero biases (TF-slim's and Keras' defaults)
    torch = "torch"  # every layer as PyTorch initialises it


# A knob of `stem=custom` only (any other stem refuses it); None takes the default noted.
_CUSTOM_STEM = {"custom_stem": True}


@dataclass
class ArchOptions:
    """The knobs besides the arch's name (README, Models); None takes the named arch's or family's default."""

    depth: int | None = None  # 6n+2 (cifar_resnet), 9n+2 (cifar_resnet_bottleneck), 18/34/50/101/152/200 (resnet)
    block_order: BlockOrder | None = None  # None: post for the v1 names, pre for *v2
    stem: Stem = Stem.auto
    shortcut: Shortcut | None = None  # None: the family's (A for cifar_resnet, else B)
    block: BlockType | None = None  # this and the lists: custom nets, or overrides of a preset layout
    widths: list[int] | None = None
    blocks: list[int] | None = None
    bottleneck_widths: list[int] | None = None
    strides: list[int] | None = None
    width: float = 1.0  # multiplies every channel count (rounded, at least 1)
    stride_in_1x1: bool = False  # bottleneck stride on the first 1x1 (paper) instead of the 3x3
    stem_kernel: int | None = field(default=None, metadata=_CUSTOM_STEM)  # default 3
    stem_stride: int | None = field(default=None, metadata=_CUSTOM_STEM)  # default 1
    stem_padding: int | None = field(default=None, metadata=_CUSTOM_STEM)  # default kernel // 2
    stem_width: int | None = field(default=None, metadata=_CUSTOM_STEM)  # default: the first unit's (inner) width
    stem_pool: bool | None = field(default=None, metadata=_CUSTOM_STEM)  # a 3x3/2 max-pool after the stem conv
    stem_pool_padding: int | None = field(default=None, metadata=_CUSTOM_STEM)  # 1 (default, "same") or 0
    stem_norm: bool = True  # any stem; false: a bare stem conv, no BN-ReLU after it
    stem_bias: bool = False
    projection_norm: bool | None = None  # None: where the block order's branch ends in a norm
    projection_bias: bool = False
    zero_init_last: bool = False  # each unit starts as its shortcut
    init: Init = Init.kaiming
    norm_eps: float = 1e-5  # BatchNorm, in PyTorch's convention (momentum = 1 - TF's decay)
    norm_momentum: float = 0.1
    norm_scale: bool = True  # false: a shift only (TF-slim's batch_norm default)
    norm_batch_stats: bool = True  # false: the running statistics in training too, never updated (Keras)
    drop_path: float = 0.0  # stochastic depth of the last unit, growing linearly from 0


ARCH_KEYS = tuple(f.name for f in fields(ArchOptions))
CUSTOM_STEM_KEYS = tuple(f.name for f in fields(ArchOptions) if f.metadata.get("custom_stem"))
_TYPES = typing.get_type_hints(ArchOptions)
# The on/off knobs (the stem=custom ones aside).
SWITCHES = tuple(k for k in ARCH_KEYS if _TYPES[k] in (bool, bool | None) and k not in CUSTOM_STEM_KEYS)


def knobs(given: Mapping[str, Any]) -> dict[str, Any]:
    """Every knob: its value in `given`, or its default where left out or None; checks that need no arch."""
    for key in given:
        require(key in ARCH_KEYS, key, given[key], f"unknown arch option; one of {', '.join(ARCH_KEYS)}")
    knob = {f.name: f.default if given.get(f.name) is None else given[f.name] for f in fields(ArchOptions)}
    width, drop_path, eps, momentum = knob["width"], knob["drop_path"], knob["norm_eps"], knob["norm_momentum"]
    require(is_number(width) and width > 0, "width", width, "must be a number > 0")
    require(isinstance(drop_path, (int, float)) and 0.0 <= drop_path < 1.0, "drop_path", drop_path, "must be in [0, 1)")
    require(is_number(eps) and eps > 0, "norm_eps", eps, "must be a number > 0")
    require(is_number(momentum) and 0 <= momentum <= 1, "norm_momentum", momentum,
            "must be in [0, 1] (PyTorch's convention: 1 - TF's decay)")
    for key in SWITCHES:  # None only where the default is (projection_norm)
        require(knob[key] is None or isinstance(knob[key], bool), key, knob[key],
                "must be true or false" + (" or null (the block order's rule)" if key == "projection_norm" else ""))
    return knob


@dataclass(unsafe_hash=True)  # hashable: complexity caches FLOP counts per spec
class ArchSpec(ArchOptions):
    """The knobs as `resolve` settles them (enums parsed, tuples per stage, channels multiplied by `width`,
    every stem value set, `depth` the weighted layers), plus the arch's name and family."""

    name: str = ""
    family: str = ""

    @property
    def min_input_size(self) -> int:
        """The smallest image side the net sees whole: the stem kernel, and image / total stride >= 1."""
        return max(self.stem_kernel, self.stem_stride * (2 if self.stem_pool else 1) * math.prod(self.strides))

    def describe_stem(self) -> str:
        pool = " + 3x3/2 max-pool" if self.stem_pool else ""
        return f"stem {self.stem_kernel}x{self.stem_kernel}/{self.stem_stride}{pool}"

    def check_input_size(self, key: str, size: int, advice: str = "") -> None:
        """The one-line error `key=size: too small ...` unless images of side `size` are at least `min_input_size`;
        `advice`: another way out, after `use key >= min`."""
        require(size >= self.min_input_size, key, size, f"too small for {self.name} ({self.describe_stem()}); "
                f"use {key} >= {self.min_input_size}" + (f" or {advice}" if advice else ""))
