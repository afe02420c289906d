"""Schema of the `arch` group: the zoo's knobs (`resnet_exp.models.ArchOptions`, so a knob added there is a
config key too), checked by the zoo's own rules, so the command line and the Python API accept the same."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from resnet_exp.models import ArchOptions, resolve


@dataclass
class _Target:
    """`instantiate(cfg.arch, num_classes=..., in_channels=..., input_size=...)` builds the model."""

    _target_: str = "resnet_exp.models.create_model"
    name: str = MISSING  # see `python -m resnet_exp.models`


# Bases in this order put `_target_` and `name` first (a dataclass lists the fields of its last base first).
@dataclass
class ArchConfig(ArchOptions, _Target):
    def __post_init__(self) -> None:
        knobs = {f.name: getattr(self, f.name) for f in dataclasses.fields(ArchOptions)}
        resolve(self.name, **knobs)  # raises ConfigError("<key>=<value>: <allowed>"), a ValueError


def register(cs: ConfigStore) -> None:
    cs.store(group="schema/arch", name="resnet", node=ArchConfig)
