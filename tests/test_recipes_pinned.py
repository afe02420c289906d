"""The paper recipes pin what the paper fixes; the seed-notebook recipes take the notebook's scaling."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from resnet_exp.config import register_schemas
from tests.helpers.cli import REPO_ROOT

PAPER_RECIPES = ("cifar_resnet_paper", "cifar_depth_study", "identity_mappings_ablation")


def compose_recipe(recipe: str, *overrides: str) -> Any:
    register_schemas()
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=[f"experiment={recipe}", *overrides])


def paper_lrs(cfg: Any) -> list[float]:
    """The learning rate of every optimizer step the recipe's scheduler gives."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.optimizer.lr)
    sched = instantiate(cfg.scheduler).scheduler(opt, cfg.trainer.max_steps)
    out = []
    for _ in range(cfg.trainer.max_steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("recipe", PAPER_RECIPES)
def test_paper_recipes_pin_device_precision_and_optimizer(recipe: str) -> None:
    cfg = compose_recipe(recipe)
    assert (cfg.trainer.devices, cfg.trainer.precision, cfg.speed.tf32) == (1, "32-true", False)
    assert (cfg.optimizer._target_, cfg.optimizer.lr, cfg.optimizer.momentum, cfg.optimizer.weight_decay) == (
        "torch.optim.SGD", 0.1, 0.9, 1e-4)
    assert (cfg.data.batch_size, cfg.trainer.max_steps, cfg.scheduler.interval.value) == (128, 64000, "step")
    assert list(cfg.scheduler.lr_scheduler.milestones) == [32000, 48000]


@pytest.mark.parametrize(("depth", "warm"), [(20, 0), (56, 0), (110, 400)])
def test_paper_schedule_step_by_step(depth: int, warm: int) -> None:
    cfg = compose_recipe("cifar_resnet_paper", f"arch.depth={depth}")
    lrs = paper_lrs(cfg)
    expected = [0.01] * warm + [0.1] * (32000 - warm) + [0.01] * 16000 + [0.001] * 16000
    assert len(lrs) == 64000
    assert lrs == pytest.approx(expected)


def test_identity_mappings_warms_resnet110_up() -> None:
    cfg = compose_recipe("identity_mappings_ablation")
    assert (cfg.arch.depth, cfg.scheduler.warmup.value, cfg.scheduler.warmup_length) == (110, "constant", 400)


def test_shortened_paper_run_keeps_its_proportions() -> None:
    cfg = compose_recipe("cifar_resnet_paper", "arch.depth=110", "trainer.max_steps=1600")
    assert list(cfg.scheduler.lr_scheduler.milestones) == [800, 1200] and cfg.scheduler.warmup_length == 10


@pytest.mark.parametrize(("recipe", "normalize", "adam_eps"), [
    ("resnet18_fashion_mnist", "unit", 1e-7), ("resnet18_cifar100", "centered", 1e-7)])
def test_seed_recipes_take_the_notebook_scaling(recipe: str, normalize: str, adam_eps: float) -> None:
    cfg = compose_recipe(recipe)
    assert cfg.data.normalize.value == normalize and cfg.optimizer.eps == adam_eps


@pytest.mark.parametrize(("normalize", "low", "high"), [("unit", 0.0, 1.0), ("centered", -0.5, 0.5)])
def test_normalize_option_scales_pixels(normalize: str, low: float, high: float) -> None:
    from resnet_exp.data import ImageDataModule

    dm = ImageDataModule("synthetic", image_size=8, train_size=64, test_size=16, val_size=16,
                         batch_size=64 - 16, num_workers=0, normalize=normalize)
    dm.setup()
    images = dm._tensors["test_x"]
    x, _ = next(iter(dm.test_dataloader()))
    assert torch.allclose(x, images.float() / 255 + low, atol=1e-6)
    assert x.min() >= low and x.max() <= high
