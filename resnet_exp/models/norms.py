"""The net's BatchNorm as the arch knobs shape it (epsilon, momentum, a learnable scale or not,
batch or running statistics in training) and how its weights start (`Init`)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from resnet_exp.models.blocks import NormLayer
from resnet_exp.models.options import Init


class RunningStatsBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm that normalises with its running statistics in training too and never updates them
    (Keras' BatchNormalization called without `training=True`): gamma * x / sqrt(1 + eps) + beta."""

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


def batch_norm(eps: float = 1e-5, momentum: float = 0.1, scale: bool = True, batch_stats: bool = True
               ) -> NormLayer:
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
