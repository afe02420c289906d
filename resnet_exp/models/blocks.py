"""Residual units: basic and bottleneck, in every block order, with shortcut options A/B/C.

Parameter names follow torchvision (`conv1`, `bn1`, ..., `downsample.0/1`) so that its
`state_dict` loads into the `post` order with `strict=True`. `bn{i}` always belongs to `conv{i}`:
after it in the post-activation orders, before it in `pre` (so `bn1` normalises the block input).
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import torch.nn.functional as F
from torch import Tensor, nn

from resnet_exp.models.options import BlockOrder, BlockType, Shortcut

NormLayer = Callable[[int], nn.Module]
ActLayer = Callable[..., nn.Module]

# Orders whose residual branch ends in a norm: the projection gets one too (its output is added to
# a normalised branch) and zero_init_last zeroes that norm's gamma. The others zero the last conv.
BRANCH_ENDS_IN_NORM = (BlockOrder.post, BlockOrder.relu_before_add, BlockOrder.relu_only_pre)
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
        if self.stride > 1:
            # Same output size as a 3x3/s conv with padding 1: ceil(n / s).
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x

    def extra_repr(self) -> str:
        return f"extra_channels={self.extra}, stride={self.stride}"


def conv_specs(
    block: BlockType, in_ch: int, mid_ch: int, out_ch: int, stride: int, stride_in_1x1: bool
) -> List[Tuple[int, int, int, int]]:
    """(in, out, kernel, stride) of each conv of the residual branch."""
    if block == BlockType.basic:
        return [(in_ch, out_ch, 3, stride), (out_ch, out_ch, 3, 1)]
    s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)  # paper v1 vs torchvision v1.5
    return [(in_ch, mid_ch, 1, s1), (mid_ch, mid_ch, 3, s3), (mid_ch, out_ch, 1, 1)]


class ResidualBlock(nn.Module):
    """One residual unit; `block` picks basic/bottleneck, `order` the BN/ReLU placement."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        stride: int = 1,
        block: BlockType = BlockType.basic,
        mid_ch: Optional[int] = None,
        order: BlockOrder = BlockOrder.post,
        shortcut: Shortcut = Shortcut.B,
        stride_in_1x1: bool = False,
        first_in_net: bool = False,
        drop_path: float = 0.0,
        norm_layer: NormLayer = nn.BatchNorm2d,
        act_layer: ActLayer = nn.ReLU,
    ) -> None:
        super().__init__()
        self.order, self.block = BlockOrder(order), BlockType(block)
        specs = conv_specs(self.block, in_ch, mid_ch or out_ch, out_ch, stride, stride_in_1x1)
        self.n = len(specs)
        for i, (cin, cout, k, s) in enumerate(specs, 1):
            setattr(self, f"conv{i}", nn.Conv2d(cin, cout, k, s, padding=k // 2, bias=False))
            # pre-activation: bn{i} normalises the input of conv{i}; otherwise its output.
            setattr(self, f"bn{i}", norm_layer(cin if self.order == BlockOrder.pre else cout))
        self.act = make_act(act_layer)
        # relu_only_pre activates the block input itself, which the identity path still needs.
        self.act_in = make_act(act_layer, inplace=False) if self.order == BlockOrder.relu_only_pre else None
        self.downsample = self._shortcut(Shortcut(shortcut), in_ch, out_ch, stride, norm_layer)
        # He et al. 2016: the first unit's pre-activation (right after the stem) feeds both paths.
        self.shortcut_preact = self.order in PREACT_ORDERS and (
            first_in_net or isinstance(self.downsample, nn.Sequential)
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def _shortcut(
        self, kind: Shortcut, in_ch: int, out_ch: int, stride: int, norm_layer: NormLayer
    ) -> Optional[nn.Module]:
        reshape = stride != 1 or in_ch != out_ch
        if kind == Shortcut.A or (kind == Shortcut.B and not reshape):
            return ZeroPadShortcut(in_ch, out_ch, stride) if reshape else None
        layers: List[nn.Module] = [nn.Conv2d(in_ch, out_ch, 1, stride, bias=False)]
        if self.order in BRANCH_ENDS_IN_NORM:
            layers.append(norm_layer(out_ch))
        return nn.Sequential(*layers)

    def zero_init_last(self) -> None:
        """Start as an identity mapping (Goyal et al. 2017): zero the branch's last layer."""
        norm = getattr(self, f"bn{self.n}")
        if self.order in BRANCH_ENDS_IN_NORM and getattr(norm, "weight", None) is not None:
            nn.init.zeros_(norm.weight)
        else:  # the last norm is absent or follows the addition: zeroing it would cut the path
            nn.init.zeros_(getattr(self, f"conv{self.n}").weight)

    def _branch_post(self, x: Tensor, norm_last: bool, act_last: bool) -> Tensor:
        for i in range(1, self.n + 1):
            x = getattr(self, f"conv{i}")(x)
            if i < self.n or norm_last:
                x = getattr(self, f"bn{i}")(x)
            if i < self.n or act_last:
                x = self.act(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        o = self.order
        if o == BlockOrder.pre:
            pre = self.act(self.bn1(x))
            h = self.conv1(pre)
            for i in range(2, self.n + 1):
                h = getattr(self, f"conv{i}")(self.act(getattr(self, f"bn{i}")(h)))
        elif o == BlockOrder.relu_only_pre:
            pre = self.act_in(x)
            h = self._branch_post(pre, norm_last=True, act_last=False)
        else:
            pre = x
            h = self._branch_post(x, norm_last=o != BlockOrder.bn_after_add,
                                  act_last=o == BlockOrder.relu_before_add)
        sc = pre if self.shortcut_preact else x
        if self.downsample is not None:
            sc = self.downsample(sc)
        out = self.drop_path(h) + sc
        if o == BlockOrder.post:
            out = self.act(out)
        elif o == BlockOrder.bn_after_add:
            out = self.act(getattr(self, f"bn{self.n}")(out))
        return out
