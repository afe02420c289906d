"""Residual units: basic and bottleneck, in every block order (each with its own forward, as drawn in
He et al. 2016, Fig. 4), with shortcut options A/B/C. Parameter names follow torchvision's; `bn{i}`
belongs to `conv{i}`: after it in the post-activation orders, before it in `pre`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from resnet_exp.models.options import BlockOrder, BlockType, Shortcut

NormLayer = Callable[[int], nn.Module]
ActLayer = Callable[..., nn.Module]

# Orders whose residual branch ends in a norm: the projection gets one too (its output is added to
# a normalised branch) and zero_init_last zeroes that norm's gamma. The others zero the last conv.
BRANCH_ENDS_IN_NORM = (BlockOrder.post, BlockOrder.relu_before_add, BlockOrder.relu_only_pre,
                       BlockOrder.relu_before_and_after_add)
# Orders that activate the block input first; their projection sees the activated input (Fig. 4).
PREACT_ORDERS = (BlockOrder.pre, BlockOrder.relu_only_pre)


def make_act(act_layer: ActLayer, inplace: bool = True) -> nn.Module:
    """Instantiate an activation, in place where the layer supports it."""
    try:
        return act_layer(inplace=inplace)
    except TypeError:  # activations without an `inplace` argument (e.g. nn.GELU)
        return act_layer()


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): drop the whole residual branch per sample."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep  # rescale so eval needs no correction

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ZeroPadShortcut(nn.Module):
    """Option A: parameter-free; subsample by striding and append zero channels."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        if out_ch < in_ch:
            raise ValueError(f"shortcut=A: cannot shrink {in_ch} to {out_ch} channels; use B or C")
        self.extra, self.stride = out_ch - in_ch, stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:  # the output size of a 3x3/s conv with padding 1: ceil(n / s)
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x

    def extra_repr(self) -> str:
        return f"extra_channels={self.extra}, stride={self.stride}"


def _shortcut(kind: Shortcut, in_ch: int, out_ch: int, stride: int, norm_layer: NormLayer | None,
              bias: bool) -> nn.Module | None:
    """None (identity), option A's zero padding, or a 1x1 projection (+ norm)."""
    reshape = stride != 1 or in_ch != out_ch
    if kind == Shortcut.A or (kind == Shortcut.B and not reshape):
        return ZeroPadShortcut(in_ch, out_ch, stride) if reshape else None
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 1, stride, bias=bias)]
    if norm_layer is not None:
        layers.append(norm_layer(out_ch))
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """One residual unit; `block` picks basic/bottleneck, `order` the BN/ReLU placement, `projection_norm`
    (None: where the branch ends in a norm) and `projection_bias` shape the 1x1 projection shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, block: BlockType = BlockType.basic,
                 mid_ch: int | None = None, order: BlockOrder = BlockOrder.post, shortcut: Shortcut = Shortcut.B,
                 stride_in_1x1: bool = False, first_in_net: bool = False, drop_path: float = 0.0,
                 norm_layer: NormLayer = nn.BatchNorm2d, act_layer: ActLayer = nn.ReLU,
                 projection_norm: bool | None = None, projection_bias: bool = False) -> None:
        super().__init__()
        self.order, self.block = BlockOrder(order), BlockType(block)
        mid_ch = mid_ch or out_ch
        if self.block == BlockType.basic:  # (in, out, kernel, stride) of each conv of the branch
            specs = [(in_ch, out_ch, 3, stride), (out_ch, out_ch, 3, 1)]
        else:  # the stride on the first 1x1 (the paper) or on the 3x3 (torchvision's v1.5)
            s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
            specs = [(in_ch, mid_ch, 1, s1), (mid_ch, mid_ch, 3, s3), (mid_ch, out_ch, 1, 1)]
        pre = self.order == BlockOrder.pre  # bn{i} normalises the input of conv{i}, else its output
        for i, (cin, cout, k, s) in enumerate(specs, 1):
            setattr(self, f"conv{i}", nn.Conv2d(cin, cout, k, s, padding=k // 2, bias=False))
            setattr(self, f"bn{i}", norm_layer(cin if pre else cout))
        self.act = make_act(act_layer)
        # relu_only_pre activates the block input itself, which the identity path still needs.
        self.act_in = make_act(act_layer, inplace=False) if self.order == BlockOrder.relu_only_pre else None
        if projection_norm is None:
            projection_norm = self.order in BRANCH_ENDS_IN_NORM
        self.downsample = _shortcut(Shortcut(shortcut), in_ch, out_ch, stride,
                                    norm_layer if projection_norm else None, projection_bias)
        # He et al. 2016: the first unit's pre-activation (right after the stem) feeds both paths.
        self.shortcut_preact = self.order in PREACT_ORDERS and (
            first_in_net or isinstance(self.downsample, nn.Sequential))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self._unit: Callable[[ResidualBlock, Tensor], Tensor] = getattr(ResidualBlock, f"_{self.order.value}")

    @property
    def last_conv(self) -> nn.Conv2d:
        return self.conv3 if self.block == BlockType.bottleneck else self.conv2

    @property
    def last_bn(self) -> nn.Module:
        return self.bn3 if self.block == BlockType.bottleneck else self.bn2

    def zero_init_last(self) -> None:
        """Start as an identity mapping (Goyal et al. 2017): zero the branch's last layer."""
        if self.order in BRANCH_ENDS_IN_NORM and getattr(self.last_bn, "weight", None) is not None:
            nn.init.zeros_(self.last_bn.weight)
        else:  # the last norm is absent or follows the addition: zeroing it would cut the path
            nn.init.zeros_(self.last_conv.weight)

    def forward(self, x: Tensor) -> Tensor:
        return self._unit(self, x)  # the method of its block order, below

    def _shortcut(self, x: Tensor) -> Tensor:
        return x if self.downsample is None else self.downsample(x)

    def _convs(self, x: Tensor) -> Tensor:
        """conv-BN-ReLU for every conv but the last, then the last conv (Fig. 4a-d)."""
        x = self.act(self.bn1(self.conv1(x)))
        if self.block == BlockType.bottleneck:
            x = self.act(self.bn2(self.conv2(x)))
        return self.last_conv(x)

    def _preact_convs(self, x: Tensor) -> Tensor:
        """conv, then BN-ReLU-conv for every further conv (Fig. 4e, after the leading BN-ReLU)."""
        x = self.conv2(self.act(self.bn2(self.conv1(x))))
        return self.conv3(self.act(self.bn3(x))) if self.block == BlockType.bottleneck else x

    # --- one forward per block order (Fig. 4), named after it ------------------------------------

    def _post(self, x: Tensor) -> Tensor:  # (a) conv-BN-ReLU-conv-BN, add, ReLU
        return self.act(self.drop_path(self.last_bn(self._convs(x))) + self._shortcut(x))

    def _bn_after_add(self, x: Tensor) -> Tensor:  # (b) conv-BN-ReLU-conv, add, BN, ReLU
        return self.act(self.last_bn(self.drop_path(self._convs(x)) + self._shortcut(x)))

    def _relu_before_add(self, x: Tensor) -> Tensor:  # (c) conv-BN-ReLU-conv-BN-ReLU, add
        return self.drop_path(self.act(self.last_bn(self._convs(x)))) + self._shortcut(x)

    def _relu_before_and_after_add(self, x: Tensor) -> Tensor:  # (c), then ReLU after the addition
        return self.act(self._relu_before_add(x))

    def _relu_only_pre(self, x: Tensor) -> Tensor:  # (d) ReLU-conv-BN-ReLU-conv-BN, add
        pre = self.act_in(x)
        return self.drop_path(self.last_bn(self._convs(pre))) + self._shortcut(pre if self.shortcut_preact else x)

    def _pre(self, x: Tensor) -> Tensor:  # (e) BN-ReLU-conv-BN-ReLU-conv, add
        pre = self.act(self.bn1(x))
        return self.drop_path(self._preact_convs(pre)) + self._shortcut(pre if self.shortcut_preact else x)
