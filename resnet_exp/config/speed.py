"""Schema of the `speed` group: the fast-path switches that are not Trainer arguments (those are
`trainer.precision` and `trainer.benchmark`). `null`: on when the run trains on CUDA (`resnet_exp.speed.plan`)."""

from __future__ import annotations

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore

from resnet_exp.speed import check_compile_mode


@dataclass
class SpeedConfig:
    channels_last: bool | None = None  # weights and input batches in channels-last memory format
    tf32: bool | None = None  # float32 matmuls / convolutions may use TF32 tensor cores
    compile: bool = False  # torch.compile the backbone (static shapes; the first batches of each shape compile)
    compile_mode: str | None = None  # null (torch's default) or one of resnet_exp.speed.COMPILE_MODES

    def __post_init__(self) -> None:
        check_compile_mode(self.compile_mode)


def register(cs: ConfigStore) -> None:
    cs.store(group="schema/speed", name="default", node=SpeedConfig)
