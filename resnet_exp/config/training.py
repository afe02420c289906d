"""Schemas of the training groups (module, optimizer, scheduler, trainer), which their YAML options extend:
Hydra rejects unknown keys and wrong types while composing, `__post_init__` checks ranges in `validate`."""

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
    """How often the LR scheduler steps, the scheduler itself (None: constant LR), and a warm-up in front of it,
    as one `resnet_exp.schedules.Schedule` that the module sizes to the run. Lengths and milestones count
    scheduler steps (epochs, or optimizer steps with interval=step) from the start of the run."""

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
        if self.max_epochs is not None:
            require(self.max_epochs >= 1 or self.max_epochs == -1, "max_epochs", self.max_epochs,
                    "must be >= 1, or -1 for no limit (0 would train nothing)")
        require(self.max_steps >= 1 or self.max_steps == -1, "max_steps", self.max_steps,
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
    cs.store(group="schema/module", name="classifier", node=ClassifierConfig)
    cs.store(group="schema/optimizer", name="sgd", node=SGDConfig)
    cs.store(group="schema/optimizer", name="adam", node=AdamConfig)
    cs.store(group="schema/optimizer", name="adamw", node=AdamWConfig)
    cs.store(group="schema/scheduler", name="cosine", node=CosineScheduleConfig)
    cs.store(group="schema/scheduler", name="multistep", node=MultiStepScheduleConfig)
    cs.store(group="schema/scheduler", name="onecycle", node=OneCycleScheduleConfig)
    cs.store(group="schema/scheduler", name="none", node=ScheduleConfig)
    cs.store(group="schema/trainer", name="lightning", node=TrainerConfig)
