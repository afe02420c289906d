"""One configurable ResNet for every `ArchSpec` (stem, stages of residual units, head), its BatchNorm and
initial weights. Module names match torchvision's, so its ResNet weights load into `post` with `strict=True`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from resnet_exp.models.blocks import PREACT_ORDERS, ActLayer, NormLayer, ResidualBlock, make_act
from resnet_exp.models.options import ArchSpec, BlockOrder, Init


class RunningStatsBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm that normalises with its running statistics in training too and never updates them
    (Keras' BatchNormalization called without `training=True`): gamma * x / sqrt(1 + eps) + beta."""

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


def batch_norm(eps: float = 1e-5, momentum: float = 0.1, scale: bool = True, batch_stats: bool = True) -> NormLayer:
    """A `norm_layer` (channels -> module) building BatchNorms with these settings."""
    cls = nn.BatchNorm2d if batch_stats else RunningStatsBatchNorm2d

    def make(channels: int) -> nn.Module:
        norm = cls(channels, eps=eps, momentum=momentum)
        if not scale:  # TF-slim's batch_norm(scale=False): a learnable shift, no gamma
            norm.weight = None
        return norm
    return make


def init_weights(model: nn.Module, init: Init) -> None:
    """Set the starting weights of every conv, linear layer and norm of `model` by `init`."""
    if Init(init) == Init.torch:
        return  # the layers keep what PyTorch gave them when they were built
    for m in model.modules():
        if Init(init) == Init.xavier and isinstance(m, (nn.Conv2d, nn.Linear)):
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
        self.stage_names: list[str] = []
        for s, (out_ch, n, mid, stride) in enumerate(zip(spec.widths, spec.blocks, spec.bottleneck_widths,
                                                         spec.strides), 1):
            units = []
            for i in range(n):
                units.append(ResidualBlock(
                    in_ch, out_ch, stride if i == 0 else 1, spec.block, mid, order, spec.shortcut, spec.stride_in_1x1,
                    first_in_net=idx == 0, drop_path=spec.drop_path * idx / max(total - 1, 1),  # linear in depth
                    norm_layer=norm_layer, act_layer=act_layer, projection_norm=spec.projection_norm,
                    projection_bias=spec.projection_bias))
                in_ch, idx = out_ch, idx + 1
            self.add_module(f"layer{s}", nn.Sequential(*units))
            self.stage_names.append(f"layer{s}")
        self.num_features = in_ch
        # Pre-activation units leave the sum un-normalised: v2 adds BN-ReLU before pooling.
        self.norm = norm_layer(in_ch) if order == BlockOrder.pre else nn.Identity()
        self.final_act = make_act(act_layer) if order in PREACT_ORDERS else nn.Identity()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc: nn.Module = nn.Linear(in_ch, num_classes) if num_classes > 0 else nn.Identity()
        if not self.conv1.weight.is_meta:  # a shape-only build (counting, listing) has nothing to fill
            init_weights(self, spec.init)
            if spec.zero_init_last:
                for m in self.modules():
                    if isinstance(m, ResidualBlock):
                        m.zero_init_last()

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


def stage_shapes(model: ResNet, input_shape: Sequence[int] = (1, 3, 32, 32)) -> list[tuple[str, tuple[int, ...]]]:
    """Output shape of the stem, each stage and the head for one dummy input, in eval mode on the
    model's device (on meta nothing is computed)."""
    names = ["stem", *model.stage_names, "head"]
    modules = [model.maxpool, *(getattr(model, n) for n in model.stage_names), model.fc]
    shapes: list[tuple[str, tuple[int, ...]]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out, n=n: shapes.append((n, tuple(out.shape))))
             for n, m in zip(names, modules)]
    param = next(model.parameters(), None)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(tuple(input_shape), device=param.device if param is not None else "cpu"))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return shapes
