"""Schemas of the training groups (module, optimizer, scheduler, trainer, and the optional callbacks, off unless
chosen), which their YAML options extend: Hydra rejects unknown keys and wrong types while composing,
`__post_init__` checks ranges in `validate`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from resnet_exp.config.lengths import BATCH_LIMITS, check_batch_limit, check_max_time, check_positive_interval
from resnet_exp.errors import require
from resnet_exp.module import TTA
from resnet_exp.schedules import Interval, Warmup


@dataclass
class ClassifierConfig:
    _target_: str = "resnet_exp.module.ImageClassifier"
    label_smoothing: float = 0.0
    decay_norm_and_bias: bool = False
    tta: TTA = TTA.none

    def __post_init__(self) -> None:
        require(0.0 <= self.label_smoothing < 1.0, "label_smoothing", self.label_smoothing, "must be in [0, 1)")


@dataclass
class OptimizerConfig:
    _target_: str = MISSING
    _partial_: bool = True  # the module calls the partial with its parameter groups
    _convert_: str = "all"  # plain lists in the optimizer state, so checkpoints load with weights_only=True
    lr: float = MISSING
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        require(self.lr > 0, "lr", self.lr, "must be > 0")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")


@dataclass
class SGDConfig(OptimizerConfig):
    _target_: str = "torch.optim.SGD"
    momentum: float = 0.9
    dampening: float = 0.0
    nesterov: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 <= self.momentum < 1, "momentum", self.momentum, "must be in [0, 1)")
        require(not self.nesterov or (self.momentum > 0 and self.dampening == 0), "nesterov",
                "true", f"needs momentum > 0 and dampening = 0 (momentum={self.momentum}, "
                f"dampening={self.dampening}); set optimizer.momentum or optimizer.nesterov=false")


@dataclass
class AdamConfig(OptimizerConfig):
    _target_: str = "torch.optim.Adam"
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    amsgrad: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas", list(self.betas),
                "must be two numbers in [0, 1)")
        require(self.eps > 0, "eps", self.eps, "must be > 0")


@dataclass
class AdamWConfig(AdamConfig):
    _target_: str = "torch.optim.AdamW"
    weight_decay: float = 0.01


@dataclass
class CosineAnnealingLR:
    _target_: str = "torch.optim.lr_scheduler.CosineAnnealingLR"
    _partial_: bool = True
    T_max: int | None = None  # scheduler steps from the start of the run to the end of the decay; null: the run
    eta_min: float = 0.0

    def __post_init__(self) -> None:
        require(self.T_max is None or self.T_max > 0, "lr_scheduler.T_max", self.T_max, "must be > 0 or null")


@dataclass
class MultiStepLR:
    _target_: str = "torch.optim.lr_scheduler.MultiStepLR"
    _partial_: bool = True
    _convert_: str = "all"
    milestones: list[int] = MISSING
    gamma: float = 0.1

    def __post_init__(self) -> None:
        require(list(self.milestones) == sorted(self.milestones), "lr_scheduler.milestones",
                list(self.milestones), "must be increasing")
        require(0 < self.gamma <= 1, "lr_scheduler.gamma", self.gamma, "must be in (0, 1]")


@dataclass
class OneCycleLR:
    """Warm up to max_lr, then anneal (Smith & Topin); stepped every batch (interval=step)."""

    _target_: str = "torch.optim.lr_scheduler.OneCycleLR"
    _partial_: bool = True
    max_lr: float = MISSING
    total_steps: int | None = None  # null: the whole run after any warm-up, filled in when the schedule is built
    pct_start: float = 0.25
    anneal_strategy: str = "cos"
    div_factor: float = 25.0
    final_div_factor: float = 1.0e4
    three_phase: bool = False

    def __post_init__(self) -> None:
        require(self.max_lr > 0, "lr_scheduler.max_lr", self.max_lr, "must be > 0")
        require(self.total_steps is None or self.total_steps > 0, "lr_scheduler.total_steps", self.total_steps,
                "must be > 0 or null (= the whole run)")
        require(0 < self.pct_start < 1, "lr_scheduler.pct_start", self.pct_start, "must be in (0, 1)")
        require(self.anneal_strategy in ("cos", "linear"), "lr_scheduler.anneal_strategy",
                self.anneal_strategy, "must be cos or linear")


@dataclass
class ScheduleConfig:
    """How often the LR scheduler steps, the scheduler itself (None: constant LR), and a warm-up in front of it;
    lengths count scheduler steps (epochs, or optimizer steps with interval=step) from the start of the run."""

    _target_: str = "resnet_exp.schedules.Schedule"
    interval: Interval = Interval.epoch
    frequency: int = 1
    lr_scheduler: Any | None = None
    warmup: Warmup = Warmup.none
    warmup_length: int = 0  # 0: no warm-up
    warmup_lr_factor: float = 0.1

    def __post_init__(self) -> None:
        require(self.frequency > 0, "frequency", self.frequency, "must be > 0")
        require(self.warmup_length >= 0, "warmup_length", self.warmup_length, "must be >= 0")
        require(0 < self.warmup_lr_factor <= 1, "warmup_lr_factor", self.warmup_lr_factor, "must be in (0, 1]")


@dataclass
class CosineScheduleConfig(ScheduleConfig):
    lr_scheduler: CosineAnnealingLR = MISSING


@dataclass
class MultiStepScheduleConfig(ScheduleConfig):
    lr_scheduler: MultiStepLR = MISSING


@dataclass
class OneCycleScheduleConfig(ScheduleConfig):
    interval: Interval = Interval.step
    lr_scheduler: OneCycleLR = MISSING


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


@dataclass
class TrainerConfig:
    """The pytorch_lightning.Trainer arguments we expect users to set (types as Lightning's)."""

    _target_: str = "pytorch_lightning.Trainer"
    default_root_dir: str | None = None
    accelerator: str = "auto"
    strategy: Any = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    precision: Any = "32-true"
    max_epochs: int | None = None
    min_epochs: int | None = None
    max_steps: int = -1
    max_time: str | None = None
    limit_train_batches: Any | None = None
    limit_val_batches: Any | None = None
    limit_test_batches: Any | None = None
    val_check_interval: Any | None = None
    check_val_every_n_epoch: int | None = 1
    num_sanity_val_steps: int | None = None
    log_every_n_steps: int | None = None
    enable_checkpointing: bool | None = None
    enable_progress_bar: bool | None = None
    enable_model_summary: bool | None = None
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    gradient_clip_algorithm: str | None = None
    deterministic: Any | None = None
    benchmark: bool | None = None
    inference_mode: bool = True
    sync_batchnorm: bool = False
    fast_dev_run: Any = False
    detect_anomaly: bool = False
    barebones: bool = False

    def __post_init__(self) -> None:
        for key in ("max_epochs", "max_steps"):  # max_epochs=None: Lightning's default
            value = getattr(self, key)
            require(value is None or value >= 1 or value == -1, key, value,
                    "must be >= 1, or -1 for no limit (0 would train nothing)")
        clip = self.gradient_clip_val  # Lightning ignores a negative value silently
        require(clip is None or clip >= 0, "gradient_clip_val", clip, "must be >= 0 (0 or null: no clipping)")
        accumulate = self.accumulate_grad_batches
        require(accumulate > 0, "accumulate_grad_batches", accumulate, "must be > 0")
        for key in BATCH_LIMITS:  # nothing to train or test is refused
            check_batch_limit(key, getattr(self, key))
        check_positive_interval("val_check_interval", self.val_check_interval)
        check_positive_interval("check_val_every_n_epoch", self.check_val_every_n_epoch)
        check_max_time(self.max_time)


def register(cs: ConfigStore) -> None:
    for group, name, node in (
            ("module", "classifier", ClassifierConfig), ("optimizer", "sgd", SGDConfig),
            ("optimizer", "adam", AdamConfig), ("optimizer", "adamw", AdamWConfig),
            ("scheduler", "cosine", CosineScheduleConfig), ("scheduler", "multistep", MultiStepScheduleConfig),
            ("scheduler", "onecycle", OneCycleScheduleConfig), ("scheduler", "none", ScheduleConfig),
            ("trainer", "lightning", TrainerConfig), ("callbacks", "ema", EMAConfig),
            ("callbacks", "early_stopping", EarlyStoppingConfig)):
        cs.store(group=f"schema/{group}", name=name, node=node)
