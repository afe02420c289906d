"""Schema of the `arch` group: the knobs of `resnet_exp.models.create_model`, typed for Hydra.

Every `conf/arch/*.yaml` extends `ArchConfig`, so unknown keys, wrong types and bad enum values fail
at composition; `__post_init__` (run by `OmegaConf.to_object`) calls the model zoo's own checks,
so the command line and the Python API accept exactly the same settings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from resnet_exp.models import BlockOrder, BlockType, Shortcut, Stem, resolve


@dataclass
class ArchConfig:
    """`instantiate(cfg.arch, num_classes=..., in_channels=..., input_size=...)` builds the model."""

    _target_: str = "resnet_exp.models.create_model"
    name: str = MISSING  # see `python -m resnet_exp.models`
    # Family depth: 6n+2 (cifar_resnet), 9n+2 (cifar_resnet_bottleneck), 18/34/50/101/152/200 (resnet).
    depth: int | None = None
    # None = the arch's own (post for v1 names, pre for *v2); the YAML files spell it out.
    # relu_before_and_after_add: Fig. 4c plus a ReLU after the addition (seed 002's unit).
    block_order: BlockOrder | None = None
    stem: Stem = Stem.auto
    shortcut: Shortcut | None = None  # None = family default (A for cifar_resnet, else B)
    # Custom nets (or overrides of a preset layout): one entry per stage.
    block: BlockType | None = None
    widths: list[int] | None = None
    blocks: list[int] | None = None
    bottleneck_widths: list[int] | None = None
    strides: list[int] | None = None
    width: float = 1.0  # multiplies every channel count (rounded, at least 1)
    stride_in_1x1: bool = False  # bottleneck stride on the first 1x1 (paper) instead of the 3x3
    # stem=custom only.
    stem_kernel: int | None = None
    stem_stride: int | None = None
    stem_padding: int | None = None
    stem_width: int | None = None
    stem_pool: bool | None = None
    stem_pool_padding: int | None = None  # 1 (default, "same") or 0 (seed 002's unpadded pool)
    # Any stem: false = a bare stem conv, no BN-ReLU after it (seed 002); v2 stems are bare anyway.
    stem_norm: bool = True
    stem_bias: bool = False  # a bias on the stem conv (seed 002)
    # 1x1 projection shortcuts: a norm after the conv (null = where the block order's branch ends
    # in a norm, i.e. all but bn_after_add and pre), a bias on the conv (seed 002: bias, no norm).
    projection_norm: bool | None = None
    projection_bias: bool = False
    zero_init_last: bool = False
    drop_path: float = 0.0

    def __post_init__(self) -> None:
        knobs = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        knobs.pop("_target_")
        resolve(**knobs)  # raises ConfigError("<key>=<value>: <allowed>"), a ValueError


def register(cs: ConfigStore) -> None:
    """Store the schema that every `conf/arch/*.yaml` names in its defaults list."""
    cs.store(group="schema/arch", name="resnet", node=ArchConfig)
