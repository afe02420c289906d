"""Schema of the `speed` group: the fast-path switches that are not Trainer arguments.

`null` means "on when the run trains on CUDA, off otherwise" (resolved by `resnet_exp.speed.plan`).
Precision and cudnn.benchmark are Trainer arguments (`trainer.precision`, `trainer.benchmark`,
also null = automatic); the GPU-resident loader is `data.loader`.
"""

from __future__ import annotations

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore

from resnet_exp.speed import check_compile_mode


@dataclass
class SpeedConfig:
    # Model weights and input batches in channels-last memory format.
    channels_last: bool | None = None
    # float32 matmuls / convolutions may use TF32 tensor cores (torch.set_float32_matmul_precision).
    tf32: bool | None = None
    # torch.compile the backbone (static shapes; the first batches of each shape compile).
    compile: bool = False
    # torch.compile mode: null (its default) or one of resnet_exp.speed.COMPILE_MODES.
    compile_mode: str | None = None

    def __post_init__(self) -> None:
        check_compile_mode(self.compile_mode)


def register(cs: ConfigStore) -> None:
    cs.store(group="schema/speed", name="default", node=SpeedConfig)
