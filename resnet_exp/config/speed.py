"""Schemas of the `speed` group, the fast-path switches that are not Trainer arguments (those are
`trainer.precision` and `trainer.benchmark`; `null`: on when the run trains on CUDA, `resnet_exp.speed.plan`),
and of the `bench` node of conf/bench.yaml (`python -m resnet_exp.bench`), which explains each key."""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from resnet_exp.errors import require, str_enum
from resnet_exp.speed import check_compile_mode


@dataclass
class SpeedConfig:
    channels_last: bool | None = None  # weights and input batches in channels-last memory format
    tf32: bool | None = None  # float32 matmuls / convolutions may use TF32 tensor cores
    compile: bool = False  # torch.compile the backbone (static shapes; the first batches of each shape compile)
    compile_mode: str | None = None  # null (torch's default) or one of resnet_exp.speed.COMPILE_MODES

    def __post_init__(self) -> None:
        check_compile_mode(self.compile_mode)


BenchMode = str_enum("BenchMode", "forward forward_backward train", __name__)
BenchDevice = str_enum("BenchDevice", "auto cpu cuda", __name__)
BenchPrecision = str_enum("BenchPrecision", "auto fp32 bf16 fp16", __name__)
BenchTimer = str_enum("BenchTimer", "events sync", __name__)


@dataclass
class BenchConfig:
    batch_size: int = 32
    image_size: int = 224
    in_channels: int = 3
    num_classes: int = 1000
    # forward: inference (eval mode, no autograd); forward_backward: loss and gradients in train mode, no
    # optimizer step; train: forward, backward and an SGD step, one training step.
    mode: list[BenchMode] = field(default_factory=lambda: [BenchMode.forward, BenchMode.train])
    burn_in: int = 10  # untimed batches first (per mode)
    batches: int = 100  # timed batches (per mode)
    device: BenchDevice = BenchDevice.auto  # auto: cuda if available, else cpu
    precision: BenchPrecision = BenchPrecision.auto  # auto: bf16 autocast on a CUDA GPU that supports it, else fp32
    cudnn_benchmark: bool | None = None  # null: on with CUDA (as `trainer.benchmark` in training runs)
    # events: CUDA events around each batch, read after the last one (no sync per batch); sync: a synchronize
    # before and after each batch, host clock.
    timer: BenchTimer = BenchTimer.events
    count_flops: bool = True  # FLOPs per batch (TFLOP/s and MFU columns); off for speed
    peak_tflops: float | None = None  # the device's peak for MFU; null: looked up from its name when known
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("batch_size", "image_size", "in_channels", "num_classes"):
            require(getattr(self, key) > 0, key, getattr(self, key), "must be > 0")
        require(len(self.mode) > 0, "mode", list(self.mode), "name at least one of " + ", ".join(BenchMode))
        require(self.burn_in >= 0, "burn_in", self.burn_in, "must be >= 0")
        require(self.batches > 0, "batches", self.batches, "must be > 0")
        peak = self.peak_tflops
        require(peak is None or peak > 0, "peak_tflops", peak, "must be > 0 or null")


def register(cs: ConfigStore) -> None:
    cs.store(group="schema/speed", name="default", node=SpeedConfig)
    cs.store(group="schema/bench", name="default", node=BenchConfig)
