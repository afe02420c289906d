"""The string-valued knobs of the zoo, as `str` enums.

Member name == value, so Hydra overrides (`arch.block_order=pre`), enum members and plain strings
are interchangeable everywhere (`BlockOrder.pre == "pre"`).
"""

from __future__ import annotations

from enum import Enum


class BlockOrder(str, Enum):
    """Where BN and ReLU sit in a residual unit (He et al. 2016, "Identity Mappings", Fig. 4)."""

    post = "post"  # (a) conv-bn-relu-conv-bn, add, relu: ResNet v1
    bn_after_add = "bn_after_add"  # (b) conv-bn-relu-conv, add, bn, relu
    relu_before_add = "relu_before_add"  # (c) conv-bn-relu-conv-bn-relu, add
    relu_only_pre = "relu_only_pre"  # (d) relu-conv-bn-relu-conv-bn, add
    pre = "pre"  # (e) bn-relu-conv-bn-relu-conv, add: ResNet v2
    # Not in Fig. 4: (c) plus a ReLU after the addition, the unit of seed notebook 002.
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
