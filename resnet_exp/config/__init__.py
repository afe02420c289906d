"""The config schema: structured configs that the YAML files in conf/ extend, and `validate`."""

from __future__ import annotations

import importlib
import math
import re
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from resnet_exp.config.resolvers import register_resolvers
from resnet_exp.errors import ConfigError
from resnet_exp.schedules import check_run_length

# The config tree; absolute, so every entry point finds it however it is started.
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
# Modules with a `register(cs)` that stores their schemas under the `schema/` group.
SCHEMA_MODULES = ("arch", "data", "training", "speed")
# Groups whose composed node must build the dataclass of its schema.
VALIDATED_GROUPS = ("arch", "data", "module", "optimizer", "scheduler", "trainer", "speed")
# The optional callbacks (off: null or absent) whose configs `validate` checks when they are on, after `groups`.
OPTIONAL_CALLBACKS = ("callbacks.ema", "callbacks.early_stopping")
SEED_MAX = 2**32 - 1  # numpy's seeds are 32-bit


def register_schemas() -> None:
    """Store every schema in Hydra's ConfigStore and add our resolvers (call before composing)."""
    register_resolvers()
    for name in SCHEMA_MODULES:
        importlib.import_module(f"resnet_exp.config.{name}").register(ConfigStore.instance())


def validate(cfg: DictConfig, groups: tuple = VALIDATED_GROUPS) -> None:
    """Run each group's range checks; raise a one-line ConfigError naming the first bad key."""
    seed = cfg.seed if "seed" in cfg else 0
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise ConfigError(f"seed={seed}: must be a whole number in [0, {SEED_MAX}]")
    # The runs are in <paths.log_dir>/<task_name>/: a path here (../../x) would put them elsewhere.
    name = str(cfg.task_name) if "task_name" in cfg else "train"
    if not name.strip() or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ConfigError(f"task_name={name}: must be one folder name (no / and not . or ..); it names "
                          "the folder under paths.log_dir that holds the runs")
    for key in (*groups, *OPTIONAL_CALLBACKS):
        node = OmegaConf.select(cfg, key, default=None)
        if isinstance(node, DictConfig):
            check_node(node, key)
        elif key in groups:
            raise ConfigError(f"{key}: no option chosen; pick one with {key}=NAME")
    check_early_stopping_sees_its_metric(cfg)
    # A schedule sized to the run (cosine `T_max`, one-cycle `total_steps` left null) needs a run of set
    # length: refused here, before a run folder exists, rather than when the fit starts.
    unlimited = "trainer" in groups and cfg.trainer.get("max_epochs") == -1 and cfg.trainer.get("max_steps", -1) == -1
    if unlimited and "scheduler" in groups:
        check_run_length(cfg.scheduler.get("lr_scheduler") or {}, math.inf)
    wandb_cfg = OmegaConf.select(cfg, "logger.wandb", default=None)
    if isinstance(wandb_cfg, DictConfig) and wandb_cfg.get("mode") != "disabled":
        from resnet_exp.loggers import check_wandb_environment  # imports wandb: only when it is used

        check_wandb_environment()


def check_node(node: DictConfig, key: str) -> None:
    """Build the node's dataclass (its schema's range checks) and refuse non-finite numbers."""
    try:
        OmegaConf.to_object(node)
    except MissingMandatoryValue as exc:
        raise ConfigError(f"{exc.full_key}: has no value; set it with {exc.full_key}=...") from None
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{exc.full_key}: {str(exc).splitlines()[0]}") from None
    except ValueError as exc:
        raise ConfigError(_name_the_typed_key(node, key, str(exc))) from None
    check_finite(OmegaConf.to_container(node, resolve=True), key)


def check_finite(value: object, key: str) -> None:
    """No NaN or infinity anywhere in a group (a learning rate of inf passes `lr > 0`)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}={value}: must be a finite number")
    if isinstance(value, dict):
        for name, item in value.items():
            check_finite(item, f"{key}.{name}")
    elif isinstance(value, list):
        for item in value:
            check_finite(item, key)


def check_early_stopping_sees_its_metric(cfg: DictConfig) -> None:
    """Refuse early stopping on a validation metric in a run that never validates (it would fail at epoch 1)."""
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


def _name_the_typed_key(node: DictConfig, group: str, message: str) -> str:
    """`group.field=value: allowed`; when the field only follows another key (`T_max:
    ${trainer.max_epochs}`), name that key, which is the one the user typed."""
    field = message.split("=", 1)[0]
    raw = OmegaConf.to_container(node, resolve=False)
    for part in field.split("."):
        raw = raw.get(part) if isinstance(raw, dict) else None
    source = re.fullmatch(r"\$\{([\w.]+)\}", raw) if isinstance(raw, str) else None
    if source is None:
        return f"{group}.{message}"
    value, allowed = message.split("=", 1)[1].split(": ", 1)
    return f"{source.group(1)}={value}: {allowed} ({group}.{field} follows it)"
