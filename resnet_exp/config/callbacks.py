"""Schemas of the optional callbacks (`callbacks/ema`, `callbacks/early_stopping`), off unless chosen: the
options in conf/callbacks/<name>/ extend these dataclasses, and `validate` checks them when one is on."""

from __future__ import annotations

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from resnet_exp.errors import ConfigError, require

# The optional callback configs `validate` checks when they are on, by key.
OPTIONAL_CALLBACKS = ("callbacks.ema", "callbacks.early_stopping")


@dataclass
class EMAConfig:
    """A moving average of the weights and buffers, `ema = decay * ema + (1 - decay) * weights` (first: a copy)."""

    _target_: str = "resnet_exp.callbacks.ema.EMAWeightAveraging"
    decay: float = 0.999
    update_every_n_steps: int = 1
    update_starting_at_step: int | None = None  # null: from the first optimizer step

    def __post_init__(self) -> None:
        require(0.0 < self.decay < 1.0, "decay", self.decay, "must be in (0, 1)")
        require(self.update_every_n_steps >= 1, "update_every_n_steps", self.update_every_n_steps, "must be >= 1")
        require(self.update_starting_at_step is None or self.update_starting_at_step >= 0, "update_starting_at_step",
                self.update_starting_at_step, "must be >= 0 or null (= from the first step)")


@dataclass
class EarlyStoppingConfig:
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` validations."""

    _target_: str = "pytorch_lightning.callbacks.EarlyStopping"
    monitor: str = "val/acc"
    mode: str = "max"
    patience: int = 3
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        require(self.mode in ("min", "max"), "mode", self.mode, "must be min or max")
        require(self.patience >= 0, "patience", self.patience,
                "must be >= 0 (validations without improvement before the run stops)")
        require(self.min_delta >= 0, "min_delta", self.min_delta, "must be >= 0")


def check_early_stopping_sees_its_metric(cfg: DictConfig) -> None:
    """Refuse early stopping on a validation metric in a run that never validates (Lightning would fail
    after the first epoch: metric not available)."""
    node = OmegaConf.select(cfg, "callbacks.early_stopping", default=None)
    if not isinstance(node, DictConfig) or not str(node.get("monitor")).startswith("val/"):
        return
    data, trainer = cfg.get("data") or {}, cfg.get("trainer") or {}
    if trainer.get("limit_val_batches") == 0:
        reason = "trainer.limit_val_batches=0"
    elif data.get("val_size") == 0 and not data.get("val_on_test"):
        reason = "data.val_size=0 without data.val_on_test=true"
    else:
        return
    raise ConfigError(f"callbacks.early_stopping.monitor={node.monitor}: the run never validates ({reason}); "
                      "validate, or turn early stopping off with callbacks/early_stopping=null")


def register(cs: ConfigStore) -> None:
    cs.store(group="schema/callbacks", name="ema", node=EMAConfig)
    cs.store(group="schema/callbacks", name="early_stopping", node=EarlyStoppingConfig)
