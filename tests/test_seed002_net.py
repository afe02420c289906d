"""Seed notebook 002's net, exactly: our recipe against a hand-written copy of the notebook's
`residual_block`/`ResNet` loaded with the same weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _Seed002Unit(nn.Module):
    """Seed 002's `residual_block`, re-typed from its description: two 3x3 convs without bias, each
    followed by BN and ReLU; a biased 1x1/2 conv on the input when the unit halves the resolution;
    the sum goes through one more ReLU."""

    def __init__(self, cin: int, cout: int, halve: bool) -> None:
        super().__init__()
        s = 2 if halve else 1
        self.a, self.a_bn = nn.Conv2d(cin, cout, 3, s, 1, bias=False), nn.BatchNorm2d(cout)
        self.b, self.b_bn = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.proj = nn.Conv2d(cin, cout, 1, s) if halve else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.b_bn(self.b(F.relu(self.a_bn(self.a(x))))))
        skip = x if self.proj is None else self.proj(x)
        return F.relu(skip + h)


class _Seed002Net(nn.Module):
    """Seed 002's `ResNet`: a biased, unpadded 7x7/2 conv (nothing after it), an unpadded 3x3/2
    max-pool, stages 64/128/256/512 of two units, a 3x3 average pool (the whole map at 96 px), fc."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 64, 7, 2)
        self.pool = nn.MaxPool2d(3, 2)
        chans = [64, 64, 128, 256, 512]
        self.units = nn.ModuleList()
        for i in range(4):
            self.units.append(_Seed002Unit(chans[i], chans[i + 1], halve=i > 0))
            self.units.append(_Seed002Unit(chans[i + 1], chans[i + 1], halve=False))
        self.head = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.stem(x))
        for unit in self.units:
            x = unit(x)
        return self.head(F.avg_pool2d(x, 3).flatten(1))


def _seed002_to_ours(theirs: _Seed002Net) -> dict:
    """The notebook net's weights under our module names."""
    out = {f"conv1.{k}": v for k, v in theirs.stem.state_dict().items()}
    out.update({f"fc.{k}": v for k, v in theirs.head.state_dict().items()})
    ours_of = {"a": "conv1", "a_bn": "bn1", "b": "conv2", "b_bn": "bn2", "proj": "downsample.0"}
    for i, unit in enumerate(theirs.units):
        for key, value in unit.state_dict().items():
            mod, _, rest = key.partition(".")
            out[f"layer{i // 2 + 1}.{i % 2}.{ours_of[mod]}.{rest}"] = value
    return out


def test_seed002_recipe_builds_the_notebook_net_exactly() -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from resnet_exp.config import CONF_DIR, register_schemas

    register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=basic_block_cifar10_96px"])
    GlobalHydra.instance().clear()
    arch = OmegaConf.to_container(cfg.arch)
    torch.manual_seed(0)
    theirs = _Seed002Net(10)
    for m in theirs.modules():  # non-trivial statistics, so a misplaced or missing BN shows
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.bias.data.uniform_(-0.5, 0.5)
    ours = instantiate(arch, num_classes=10, in_channels=3, input_size=96)
    ours.load_state_dict(_seed002_to_ours(theirs), strict=True)
    x = torch.randn(2, 3, 96, 96)
    for train in (False, True):  # running statistics, then batch statistics
        theirs.train(train), ours.train(train)
        with torch.no_grad():
            torch.testing.assert_close(ours(x), theirs(x))
    # What the recipe claimed before (relu_before_add) is another net: the ReLU after the addition
    # matters once a projection can make the sum negative.
    fig4c = instantiate({**arch, "block_order": "relu_before_add"}, num_classes=10, in_channels=3, input_size=96)
    fig4c.load_state_dict(_seed002_to_ours(theirs), strict=True)
    fig4c.eval(), theirs.eval()
    with torch.no_grad():
        assert not torch.allclose(fig4c(x), theirs(x), atol=1e-3)
