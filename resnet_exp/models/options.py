"""The knobs of the zoo, torch-free: `ArchOptions` lists every one (name, type, default) once,
for `create_model`, `resolve` and the `arch` config schema alike.

The string-valued knobs are `str` enums whose member name == value, so Hydra overrides
(`arch.block_order=pre`), enum members and plain strings are interchangeable everywhere
(`BlockOrder.pre == "pre"`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any


class BlockOrder(str, Enum):
    """Where BN and ReLU sit in a residual unit (He et al. 2016, "Identity Mappings", Fig. 4)."""

    post = "post"  # (a) conv-bn-relu-conv-bn, add, relu: ResNet v1
    bn_after_add = "bn_after_add"  # (b) conv-bn-relu-conv, add, bn, relu
    relu_before_add = "relu_before_add"  # (c) conv-bn-relu-conv-bn-relu, add
    relu_only_pre = "relu_only_pre"  # (d) relu-conv-bn-relu-conv-bn, add
    pre = "pre"  # (e) bn-relu-conv-bn-relu-conv, add: ResNet v2
    # Not in Fig. 4: (c) plus a ReLU after the addition (experiment=basic_block_cifar10_96px's unit).
    relu_before_and_after_add = "relu_before_and_after_add"  # conv-bn-relu-conv-bn-relu, add, relu


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
    torch = "torch"  # every layer as PyTorch initialises it (a plain PyTorch net)


def _custom_stem() -> Any:
    """A knob of `stem=custom` only (any other stem refuses it); None = the default noted."""
    return field(default=None, metadata={"custom_stem": True})


@dataclass
class ArchOptions:
    """The knobs of the zoo besides the arch's name: what `create_model` and `resolve` take as
    keyword arguments and what the `arch` config group sets (its schema extends this class).

    None takes the named arch's own value, or the family's default.
    """

    # Family depth: 6n+2 (cifar_resnet), 9n+2 (cifar_resnet_bottleneck), 18/34/50/101/152/200 (resnet).
    depth: int | None = None
    # None = the arch's own: post for the v1 names, pre for *v2.
    block_order: BlockOrder | None = None
    stem: Stem = Stem.auto
    shortcut: Shortcut | None = None  # None = the family's (A for cifar_resnet, else B)
    # Custom nets (or overrides of a preset layout): one entry per stage.
    block: BlockType | None = None
    widths: list[int] | None = None
    blocks: list[int] | None = None
    bottleneck_widths: list[int] | None = None
    strides: list[int] | None = None
    width: float = 1.0  # multiplies every channel count (rounded, at least 1)
    stride_in_1x1: bool = False  # bottleneck stride on the first 1x1 (paper) instead of the 3x3
    stem_kernel: int | None = _custom_stem()  # default 3
    stem_stride: int | None = _custom_stem()  # default 1
    stem_padding: int | None = _custom_stem()  # default kernel // 2
    stem_width: int | None = _custom_stem()  # default: the first unit's (inner) width
    stem_pool: bool | None = _custom_stem()  # a 3x3/2 max-pool after the stem conv
    # 1 (default, "same") or 0: an unpadded pool, as in experiment=basic_block_cifar10_96px.
    stem_pool_padding: int | None = _custom_stem()
    # Any stem: false = a bare stem conv, no BN-ReLU after it; v2 stems are bare anyway.
    stem_norm: bool = True
    stem_bias: bool = False  # a bias on the stem conv
    # 1x1 projection shortcuts: a norm after the conv (null = where the block order's branch ends
    # in a norm, i.e. all but bn_after_add and pre), and a bias on the conv. A biased projection
    # without a norm and a biased, bare stem make the net of experiment=basic_block_cifar10_96px.
    projection_norm: bool | None = None
    projection_bias: bool = False
    zero_init_last: bool = False  # each unit's branch starts at zero: the unit starts as its shortcut
    init: Init = Init.kaiming
    # Every BatchNorm: epsilon and momentum in PyTorch's convention (TF's decay d is 1 - d: Keras'
    # 0.99 is 0.01, TF-slim's 0.999 is 0.001); a learnable scale (false: a shift only, TF-slim's
    # batch_norm default); batch statistics in training (false: the running statistics, never
    # updated, as Keras' BatchNormalization called without training=True).
    norm_eps: float = 1e-5
    norm_momentum: float = 0.1
    norm_scale: bool = True
    norm_batch_stats: bool = True
    drop_path: float = 0.0  # stochastic depth of the last unit, growing linearly from 0


ARCH_KEYS = tuple(f.name for f in fields(ArchOptions))
CUSTOM_STEM_KEYS = tuple(f.name for f in fields(ArchOptions) if f.metadata.get("custom_stem"))
