"""torch.compile through the framework on CPU (inductor): a tiny net trains two steps in each mode
that makes sense off a GPU (reduce-overhead falls back to plain inductor code without CUDA graphs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from benchmarks.harness import compose_run_config
from resnet_exp.callbacks import StepTimer
from resnet_exp.pipeline import build_parts


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["reduce-overhead", "max-autotune-no-cudagraphs"])
def test_compiled_net_trains_two_steps_on_cpu(tmp_path: Path, mode: str) -> None:
    torch._dynamo.reset()
    cfg = compose_run_config([
        "data=synthetic", "data.image_size=8", "data.train_size=24", "data.val_size=8", "data.test_size=8",
        "data.batch_size=4", "data.num_workers=0", "arch=resnet20", "arch.width=0.125",
        "trainer.accelerator=cpu", "trainer.devices=1", "trainer.max_steps=2", "trainer.limit_val_batches=0",
        "trainer.num_sanity_val_steps=0", "logger.wandb.mode=disabled", "callbacks.model_summary=null",
        "speed.compile=true", f"speed.compile_mode={mode}"], tmp_path)
    with open_dict(cfg):
        del cfg["hydra"]
    parts = build_parts(cfg)
    assert parts.speed.compile and parts.speed.compile_mode == mode
    before = [p.detach().clone() for p in parts.model.parameters()]
    parts.trainer.fit(parts.module, datamodule=parts.datamodule)
    assert parts.trainer.global_step == 2
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, parts.model.parameters()))
    assert torch.isfinite(parts.trainer.callback_metrics["train/loss_epoch"])
    timer = next(cb for cb in parts.trainer.callbacks if isinstance(cb, StepTimer))
    assert [r.warmup for r in timer.rows][:1] == [True]  # the batch that compiled is warm-up
    assert all("_orig_mod" not in k for k in parts.module.state_dict())  # checkpoints keep their keys
