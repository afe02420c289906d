"""The paper recipes pin what the paper fixes; the seed-notebook recipes take the notebook's scaling, layer
defaults (norms, initialisation, projections) and precision."""

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
    ("resnet18_fashion_mnist", "unit", 1e-7), ("resnet18_cifar100", "centered", 1e-7),
    ("basic_block_cifar10_96px", "symmetric", 1e-8)])
def test_seed_recipes_take_the_notebook_scaling(recipe: str, normalize: str, adam_eps: float) -> None:
    cfg = compose_recipe(recipe)
    assert cfg.data.normalize.value == normalize and cfg.optimizer.eps == adam_eps


@pytest.mark.parametrize(("normalize", "low", "high"), [("unit", 0.0, 1.0), ("centered", -0.5, 0.5),
                                                      ("symmetric", -1.0, 1.0)])
def test_normalize_option_scales_pixels(normalize: str, low: float, high: float) -> None:
    from resnet_exp.data import ImageDataModule

    dm = ImageDataModule("synthetic", image_size=8, train_size=64, test_size=16, val_size=16,
                         batch_size=64 - 16, num_workers=0, normalize=normalize)
    dm.setup()
    images = dm._tensors["test_x"]
    x, _ = next(iter(dm.test_dataloader()))
    assert torch.allclose(x, images.float() / 255 * (high - low) + low, atol=1e-6)
    assert x.min() >= low and x.max() <= high


# ---------------------------------------------------------------------------- the TF-ported seed nets
def recipe_net(recipe: str, *overrides: str) -> torch.nn.Module:
    cfg = compose_recipe(recipe, *overrides)
    torch.manual_seed(0)
    return instantiate(cfg.arch, num_classes=10, in_channels=3, input_size=32)


def layers(model: torch.nn.Module, kind: type) -> list[Any]:
    return [m for m in model.modules() if isinstance(m, kind)]


def glorot_uniform(model: torch.nn.Module) -> bool:
    """Every conv and linear weight inside its Glorot bound (and filling it), every bias zero."""
    for m in layers(model, (torch.nn.Conv2d, torch.nn.Linear)):
        w = m.weight
        bound = (6 / (w[0].numel() + w.shape[0] * w[0, 0].numel())) ** 0.5
        if not 0.5 * bound < w.abs().max() <= bound or (m.bias is not None and m.bias.abs().max() > 0):
            return False
    return True


def test_seed000_net_has_tf_slims_batch_norm_and_xavier_weights() -> None:
    model = recipe_net("slim_bottleneck_cifar10", "arch.width=0.25")
    norms = layers(model, torch.nn.BatchNorm2d)
    assert norms and all((m.weight, m.eps, m.momentum) == (None, 1e-3, 1e-3) for m in norms)
    assert all(m.bias is None for m in layers(model, torch.nn.Conv2d))  # slim: no conv bias before a BN
    assert model.fc.bias is not None and glorot_uniform(model)


@pytest.mark.parametrize("recipe", ["resnet18_fashion_mnist", "resnet18_cifar100"])
def test_keras_seed_nets_have_biased_bare_projections_and_keras_defaults(recipe: str) -> None:
    model = recipe_net(recipe, "arch.width=0.25")
    shortcuts = [m.downsample for m in model.modules() if getattr(m, "downsample", None) is not None]
    assert len(shortcuts) == 3  # stages 2-4 change the shape
    for shortcut in shortcuts:  # Keras Conv2D(1x1, strides=2): a bias, no BN after it
        (conv,) = list(shortcut)
        assert isinstance(conv, torch.nn.Conv2d) and conv.kernel_size == (1, 1) and conv.bias is not None
    norms = layers(model, torch.nn.BatchNorm2d)
    assert all((m.eps, m.momentum) == (1e-3, 0.01) and m.weight is not None for m in norms)
    assert glorot_uniform(model)


def test_seed004_notebook_variant_trains_batch_norm_in_inference_mode() -> None:
    """arch.norm_batch_stats=false: the notebook's BN (running statistics, never updated)."""
    model = recipe_net("resnet18_cifar100", "arch.width=0.125", "arch.norm_batch_stats=false")
    images = torch.randn(2, 3, 32, 32)
    trained = model.train()(images)
    torch.testing.assert_close(trained, model.eval()(images))
    assert all(m.running_var.eq(1).all() and m.running_mean.eq(0).all()
               for m in layers(model, torch.nn.BatchNorm2d))


def test_timing_recipe_pins_float32_without_tf32(monkeypatch: pytest.MonkeyPatch) -> None:
    from hydra import compose, initialize_config_dir

    from resnet_exp import speed

    monkeypatch.setattr(speed, "trains_on_cuda", lambda accelerator: True)  # as on a GPU machine
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        recipe = compose(config_name="bench", overrides=["bench_recipe=resnet_v2_timing"])
        plain = compose(config_name="bench")
    trainer = {"accelerator": "cuda", "precision": "32-true"}
    assert speed.plan(trainer, recipe.speed).tf32 is False
    assert speed.plan(trainer, plain.speed).tf32 is True  # what null would have meant


def test_paper_batch_split_over_two_devices_composes() -> None:
    """The paper's BN statistics over 64 images: two DDP processes of 64, one global batch of 128."""
    cfg = compose_recipe("cifar_resnet_paper", "trainer=ddp", "trainer.devices=2", "data.batch_size=64")
    assert (cfg.trainer.devices, cfg.data.batch_size, cfg.trainer.sync_batchnorm) == (2, 64, False)
    assert (cfg.trainer.max_steps, list(cfg.scheduler.lr_scheduler.milestones)) == (64000, [32000, 48000])
