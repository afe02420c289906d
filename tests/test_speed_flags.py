"""`speed.tf32` switches TF32 for matmuls and cuDNN convolutions alike (checked on CPU); one check of
`speed.compile_mode` for the config and the Python API."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
import torch
from omegaconf import OmegaConf

from resnet_exp import speed
from resnet_exp.config.speed import SpeedConfig


@pytest.fixture
def restore_backend_flags() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved = (torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32,
                 torch.backends.cudnn.allow_tf32)
        yield
        torch.set_float32_matmul_precision(saved[0])
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[1:]


@pytest.mark.parametrize("tf32", [False, True])
def test_tf32_switch_sets_matmul_and_cudnn(tf32: bool, restore_backend_flags: None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = not tf32
        speed.plan({"accelerator": "cpu"}, {"tf32": tf32}).apply_backend()
        assert torch.backends.cudnn.allow_tf32 is tf32
        assert torch.backends.cuda.matmul.allow_tf32 is tf32
        assert torch.get_float32_matmul_precision() == ("high" if tf32 else "highest")


def test_compile_mode_is_checked_once_for_config_and_plan() -> None:
    message = "compile_mode=fast: must be null or one of " + ", ".join(speed.COMPILE_MODES)
    with pytest.raises(ValueError) as schema:
        OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SpeedConfig), {"compile_mode": "fast"}))
    with pytest.raises(ValueError) as plan:
        speed.plan({"accelerator": "cpu"}, {"compile_mode": "fast"})
    assert str(schema.value) == str(plan.value) == message
    for mode in (None, *speed.COMPILE_MODES):
        assert speed.plan({"accelerator": "cpu"}, {"compile_mode": mode}).compile_mode == mode


def test_trainer_profiles_nothing_by_default_and_what_the_config_asks_for(run_config) -> None:
    from pytorch_lightning.profilers import SimpleProfiler

    from resnet_exp.callbacks.profiler import NoProfiler
    from resnet_exp.pipeline import build_parts
    from tests.helpers.cli import TINY_RUN

    tiny = [*TINY_RUN, "trainer.max_steps=2", "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0"]
    parts = build_parts(run_config(*tiny))
    assert isinstance(parts.trainer.profiler, NoProfiler)
    with parts.trainer.profiler.profile("outer"), parts.trainer.profiler.profile("inner"):
        pass  # one shared context serves nested uses
    parts.trainer.fit(parts.module, datamodule=parts.datamodule)
    assert parts.trainer.global_step == 2

    parts = build_parts(run_config(*tiny, "+trainer.profiler=simple"))
    assert isinstance(parts.trainer.profiler, SimpleProfiler)
    parts.trainer.fit(parts.module, datamodule=parts.datamodule)
    assert len(parts.trainer.profiler.recorded_durations["[Callback]StepTimer.on_train_batch_end"]) == 2
