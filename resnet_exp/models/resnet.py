"""ResNet v1/v2 and the block-order ablations (He et al. 2016, Fig. 4), pure PyTorch: one configurable `ResNet`
per `ArchSpec`. Module names match torchvision's, so its weights load into `post` with `strict=True`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import StochasticDepth

from resnet_exp.errors import require
from resnet_exp.models.families import resolve
from resnet_exp.models.options import ArchSpec, BlockOrder, BlockType, Init, Shortcut

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


class ZeroPadShortcut(nn.Module):
    """Option A: parameter-free; subsample by striding and append zero channels."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        if out_ch < in_ch:
            raise ValueError(f"shortcut=A: cannot shrink {in_ch} to {out_ch} channels; use B or C")
        self.extra, self.stride = out_ch - in_ch, stride

    def forward(self, x: Tensor) -> Tensor:  # subsampled to the size of a 3x3/s conv's output: ceil(n / s)
        return F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, 0, self.extra))

    def extra_repr(self) -> str:
        return f"extra_channels={self.extra}, stride={self.stride}"


class ResidualBlock(nn.Module):
    """One residual unit, basic or bottleneck, with one forward per block order; `bn{i}` belongs to `conv{i}`:
    after it, or before it in `pre`. `projection_norm` None: a norm where the branch ends in one."""

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
        reshape = stride != 1 or in_ch != out_ch
        if Shortcut(shortcut) == Shortcut.C or (shortcut == Shortcut.B and reshape):  # a 1x1 projection (+ norm)
            proj = nn.Conv2d(in_ch, out_ch, 1, stride, bias=projection_bias)
            norm = self.order in BRANCH_ENDS_IN_NORM if projection_norm is None else projection_norm
            self.downsample: nn.Module | None = nn.Sequential(proj, norm_layer(out_ch)) if norm else nn.Sequential(proj)
        else:  # identity, or option A's zero padding where the shape changes
            self.downsample = ZeroPadShortcut(in_ch, out_ch, stride) if reshape else None
        # He et al. 2016: the first unit's pre-activation (right after the stem) feeds both paths.
        self.shortcut_preact = self.order in PREACT_ORDERS and (
            first_in_net or isinstance(self.downsample, nn.Sequential))
        self.drop_path = StochasticDepth(drop_path, "row") if drop_path > 0 else nn.Identity()
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
        return self._unit(self, x)  # the method named after its block order, below

    def _shortcut(self, x: Tensor) -> Tensor:
        return x if self.downsample is None else self.downsample(x)

    def _convs(self, x: Tensor) -> Tensor:
        """conv-BN-ReLU for every conv but the last, then the last conv (Fig. 4a-d)."""
        x = self.act(self.bn1(self.conv1(x)))
        if self.block == BlockType.bottleneck:
            x = self.act(self.bn2(self.conv2(x)))
        return self.last_conv(x)

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
        out = self.conv2(self.act(self.bn2(self.conv1(pre))))
        if self.block == BlockType.bottleneck:
            out = self.conv3(self.act(self.bn3(out)))
        return self.drop_path(out) + self._shortcut(pre if self.shortcut_preact else x)


class RunningStatsBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm that normalises with its running statistics in training too and never updates them
    (Keras' BatchNormalization called without `training=True`): gamma * x / sqrt(1 + eps) + beta."""

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


def batch_norm(eps: float = 1e-5, momentum: float = 0.1, scale: bool = True, batch_stats: bool = True) -> NormLayer:
    """A `norm_layer` (channels -> module) building BatchNorms with these settings."""

    def make(channels: int) -> nn.Module:
        norm = (nn.BatchNorm2d if batch_stats else RunningStatsBatchNorm2d)(channels, eps=eps, momentum=momentum)
        if not scale:  # TF-slim's batch_norm(scale=False): a learnable shift, no gamma
            norm.weight = None
        return norm
    return make


def init_weights(model: nn.Module, init: Init) -> None:
    """Set the starting weights of every conv, linear layer and norm of `model` by `init`."""
    if init == Init.torch:
        return  # the layers keep what PyTorch gave them when they were built
    for m in model.modules():
        if init == Init.xavier and isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ResNet(nn.Module):
    """ResNet v1/v2 and the block-order ablations, from an `ArchSpec`."""

    def __init__(self, spec: ArchSpec, num_classes: int = 1000, in_channels: int = 3,
                 norm_layer: NormLayer | None = None, act_layer: ActLayer = nn.ReLU) -> None:
        super().__init__()
        self.spec, self.num_classes, self.in_channels = spec, num_classes, in_channels
        if norm_layer is None:  # BatchNorm as the spec's norm_* knobs set it
            norm_layer = batch_norm(spec.norm_eps, spec.norm_momentum, spec.norm_scale, spec.norm_batch_stats)
        order = spec.block_order
        # v2 (Fig. 4e) has a bare conv stem: the first unit's BN-ReLU is its activation.
        # relu_only_pre keeps the stem BN; the first unit's leading ReLU activates it.
        self.conv1 = nn.Conv2d(in_channels, spec.stem_width, spec.stem_kernel, spec.stem_stride,
                               padding=spec.stem_padding, bias=spec.stem_bias)
        self.bn1 = norm_layer(spec.stem_width) if spec.stem_norm and order != BlockOrder.pre else nn.Identity()
        self.relu = make_act(act_layer) if spec.stem_norm and order not in PREACT_ORDERS else nn.Identity()
        self.maxpool = nn.MaxPool2d(3, 2, spec.stem_pool_padding) if spec.stem_pool else nn.Identity()

        total, idx, in_ch = sum(spec.blocks), 0, spec.stem_width
        self.stage_names = [f"layer{s}" for s in range(1, len(spec.blocks) + 1)]
        for name, out_ch, n, mid, stride in zip(self.stage_names, spec.widths, spec.blocks, spec.bottleneck_widths,
                                                spec.strides):
            units = []
            for i in range(n):
                units.append(ResidualBlock(
                    in_ch, out_ch, stride if i == 0 else 1, spec.block, mid, order, spec.shortcut, spec.stride_in_1x1,
                    first_in_net=idx == 0, drop_path=spec.drop_path * idx / max(total - 1, 1),  # linear in depth
                    norm_layer=norm_layer, act_layer=act_layer, projection_norm=spec.projection_norm,
                    projection_bias=spec.projection_bias))
                in_ch, idx = out_ch, idx + 1
            self.add_module(name, nn.Sequential(*units))
        self.num_features = in_ch
        # Pre-activation units leave the sum un-normalised: v2 adds BN-ReLU before pooling.
        self.norm = norm_layer(in_ch) if order == BlockOrder.pre else nn.Identity()
        self.final_act = make_act(act_layer) if order in PREACT_ORDERS else nn.Identity()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc: nn.Module = nn.Linear(in_ch, num_classes) if num_classes > 0 else nn.Identity()
        if not self.conv1.weight.is_meta:  # a shape-only build (counting, listing) has nothing to fill
            init_weights(self, spec.init)
            for unit in (m for m in self.modules() if spec.zero_init_last and isinstance(m, ResidualBlock)):
                unit.zero_init_last()

    @property
    def depth(self) -> int:
        return self.spec.depth

    def forward_stem(self, x: Tensor) -> Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_features(self, x: Tensor) -> Tensor:
        """Image batch -> last feature map (after v2's final BN-ReLU)."""
        x = self.forward_stem(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.final_act(self.norm(x))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Feature map -> logits (or pooled features with `pre_logits=True`)."""
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def create_model(name: str, num_classes: int = 1000, in_channels: int = 3, input_size: int | None = None,
                 norm_layer: NormLayer | None = None, act_layer: ActLayer = nn.ReLU, **arch: Any) -> ResNet:
    """Build a named arch with the knobs of `ArchOptions` (`conf/arch/*.yaml`'s keys); `input_size` (px) lets
    `stem="auto"` choose, `norm_layer` replaces the BatchNorm. Bad input raises a one-line ConfigError."""
    require(isinstance(num_classes, int) and num_classes >= 0, "num_classes", num_classes, "must be an integer >= 0")
    require(isinstance(in_channels, int) and in_channels >= 1, "in_channels", in_channels, "must be an integer >= 1")
    spec = resolve(name, input_size=input_size, **arch)
    return ResNet(spec, num_classes=num_classes, in_channels=in_channels, norm_layer=norm_layer, act_layer=act_layer)


def stage_shapes(model: ResNet, input_shape: Sequence[int] = (1, 3, 32, 32)) -> list[tuple[str, tuple[int, ...]]]:
    """Output shape of the stem, each stage and the head for a zero input, in eval mode on the model's device."""
    param = next(model.parameters(), None)
    x = torch.zeros(tuple(input_shape), device=param.device if param is not None else "cpu")
    steps = [("stem", model.forward_stem), *((n, getattr(model, n)) for n in model.stage_names),
             ("head", lambda t: model.forward_head(model.final_act(model.norm(t))))]
    shapes, was_training = [], model.training
    try:
        model.eval()
        with torch.no_grad():
            for name, step in steps:
                x = step(x)
                shapes.append((name, tuple(x.shape)))
    finally:
        model.train(was_training)
    return shapes
