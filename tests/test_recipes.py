"""The recipes in conf/experiment/: each composes with the numbers of its source, builds the net of
its seed notebook, and runs a couple of tiny steps through the CLI (in-process) on synthetic data."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import OmegaConf

from resnet_exp.config import register_schemas, validate
from resnet_exp.models import stage_shapes
from tests.helpers.cli import REPO_ROOT, explain, run_in_process, train_in_process

CONF_DIR = REPO_ROOT / "conf"
RECIPES = sorted(p.stem for p in [*(CONF_DIR / "experiment").glob("*.yaml"), *(CONF_DIR / "bench_recipe").glob("*.yaml")])
BENCH_RECIPES = sorted(p.stem for p in (CONF_DIR / "bench_recipe").glob("*.yaml"))  # of `python -m resnet_exp.bench`
SWEEP_RECIPE = "slim_bottleneck_block_order"  # run as its own sweep below
TRAIN_RECIPES = [r for r in RECIPES if r not in BENCH_RECIPES]

SLIM = {"arch.name": "custom", "arch.block": "bottleneck", "arch.widths": [128, 256, 512],
        "arch.bottleneck_widths": [32, 64, 128], "arch.blocks": [2, 2, 2], "arch.stem_kernel": 5,
        "arch.stem_stride": 2, "arch.stem_width": 32, "arch.stem_pool": True, "data.name": "cifar10",
        "data.resize": 96, "data.batch_size": 64, "optimizer._target_": "torch.optim.SGD",
        "optimizer.lr": 0.01, "optimizer.momentum": 0.9, "trainer.max_steps": 20000,
        "trainer.max_epochs": -1, "scheduler.lr_scheduler": None, "arch.init": "xavier",
        "arch.norm_scale": False, "arch.norm_eps": 1e-3, "arch.norm_momentum": 1e-3}
# Keras' layer defaults, which seed notebooks 003 and 004 keep.
KERAS = {"arch.projection_norm": False, "arch.projection_bias": True, "arch.init": "xavier",
         "arch.norm_eps": 1e-3, "arch.norm_momentum": 0.01, "arch.norm_scale": True, "arch.norm_batch_stats": True}
PAPER = {"arch.name": "cifar_resnet", "arch.shortcut": "A", "data.name": "cifar10", "data.batch_size": 128,
         "data.augment": "standard", "optimizer._target_": "torch.optim.SGD", "optimizer.lr": 0.1,
         "optimizer.momentum": 0.9, "optimizer.weight_decay": 1e-4, "scheduler.interval": "step",
         "scheduler.lr_scheduler.milestones": [32000, 48000], "scheduler.lr_scheduler.gamma": 0.1,
         "trainer.max_steps": 64000, "trainer.max_epochs": -1}
# recipe -> (key numbers of its source, sweep axes, (input px, stem + stage output sides) of the full net)
EXPECTED: dict[str, tuple[dict[str, Any], dict[str, str], tuple[int, list[int]] | None]] = {
    "slim_bottleneck_cifar10": (SLIM, {}, (96, [24, 24, 12, 6])),
    "slim_bottleneck_block_order": (SLIM, {"arch.block_order": "post,pre"}, (96, [24, 24, 12, 6])),
    "basic_block_cifar10_96px": (
        {"arch.block": "basic", "arch.widths": [64, 128, 256, 512], "arch.stem_kernel": 7,
         "arch.stem_stride": 2, "arch.stem_padding": 0, "arch.stem_pool_padding": 0,
         "arch.block_order": "relu_before_and_after_add", "arch.stem_norm": False, "arch.stem_bias": True,
         "arch.projection_norm": False, "arch.projection_bias": True, "arch.init": "torch",
         "data.name": "cifar10", "data.resize": 96, "data.batch_size": 64, "data.normalize": "symmetric",
         "optimizer._target_": "torch.optim.Adam", "optimizer.lr": 0.01, "trainer.max_epochs": 20},
        {}, (96, [22, 22, 11, 6, 3])),  # the notebook prints 22, 11, 6, 3 after its blocks 2-5
    "resnet18_fashion_mnist": (
        {"arch.name": "resnet18", "arch.stem": "imagenet", "data.name": "fashion_mnist", "data.batch_size": 64,
         "data.val_size": 12000, "optimizer._target_": "torch.optim.Adam", "optimizer.lr": 1e-3,
         "trainer.max_epochs": 5, **KERAS},
        {}, (28, [7, 7, 4, 2, 1])),
    "quickstart": (
        {"arch.name": "custom", "arch.block": "basic", "arch.widths": [32, 64, 128], "arch.blocks": [1, 1, 1],
         "arch.stem_kernel": 3, "arch.stem_stride": 2, "arch.stem_width": 32, "arch.stem_pool": False,
         "data.name": "fashion_mnist", "data.batch_size": 256, "data.val_size": 5000,
         "optimizer._target_": "torch.optim.SGD", "optimizer.lr": 0.1, "scheduler.interval": "step",
         "scheduler.lr_scheduler._target_": "torch.optim.lr_scheduler.OneCycleLR",
         "scheduler.lr_scheduler.max_lr": 0.1, "trainer.max_epochs": 8},
        {}, (28, [14, 14, 7, 4])),
    "fashion_mnist_speedrun": (
        {"arch.name": "custom", "arch.block": "basic", "arch.widths": [48, 96, 192], "arch.blocks": [1, 1, 1],
         "arch.stem_stride": 2, "arch.stem_width": 48, "data.name": "fashion_mnist", "data.batch_size": 256,
         "data.val_size": 0, "data.hflip": True, "module.label_smoothing": 0.1, "module.tta": "flip", "trainer.precision": "bf16-mixed",
         "optimizer._target_": "torch.optim.SGD", "optimizer.lr": 0.1,
         "scheduler.lr_scheduler._target_": "torch.optim.lr_scheduler.OneCycleLR", "trainer.max_epochs": 13},
        {}, (28, [14, 14, 7, 4])),
    "resnet18_cifar100": (
        {"arch.name": "resnet18", "arch.stem_kernel": 3, "arch.stem_stride": 1, "arch.stem_padding": 0,
         "arch.stem_pool": False, "data.name": "cifar100", "data.batch_size": 512,
         "optimizer._target_": "torch.optim.Adam", "optimizer.lr": 1e-3, **KERAS},
        {}, (32, [30, 30, 15, 8, 4])),
    "cifar_resnet_paper": ({**PAPER, "arch.depth": 20}, {}, (32, [32, 32, 16, 8])),
    "cifar_depth_study": ({**PAPER, "arch.depth": 20}, {"arch.depth": "20,32,44,56,110"}, None),
    "identity_mappings_ablation": (
        {**PAPER, "arch.depth": 110},
        {"arch.block_order": "post,bn_after_add,relu_before_add,relu_only_pre,pre"}, None),
    "block_order_study": (
        {"arch.name": "cifar_resnet", "arch.widths": [32, 64, 128], "arch.stem_stride": 2, "arch.stem_width": 32,
         "data.name": "fashion_mnist", "data.batch_size": 256, "data.val_size": 5000,
         "optimizer._target_": "torch.optim.SGD", "optimizer.lr": 0.1, "trainer.max_epochs": 4},
        {"arch.depth": "8,14", "arch.block_order": "post,bn_after_add,relu_before_add,relu_only_pre,pre",
         "seed": "1,2,3"}, (28, [14, 14, 7, 4])),
    "resnet_v2_timing": (
        {"arch.name": "resnet50v2", "arch.block_order": "pre", "bench.batch_size": 32,
         "bench.image_size": 224, "bench.mode": ["forward"], "bench.burn_in": 10, "bench.batches": 100,
         "bench.precision": "fp32", "speed.tf32": False},
        {"arch": "resnet50v2,resnet101v2,resnet152v2,resnet200v2"}, None),
}

# Tiny settings: 32 px synthetic images (no 96 px resize; the smallest the 7x7/2 + pool stems take), width 1/8, one epoch of 2 steps with
# one validation and one test batch, no wandb.
TINY = ["data=synthetic", "data.image_size=32", "data.resize=null", "data.train_size=48",
        "data.val_size=32", "data.test_size=32", "data.batch_size=8", "data.num_workers=0",
        "arch.width=0.125", "trainer.accelerator=cpu", "trainer.devices=1", "trainer.max_steps=2",
        "trainer.max_epochs=1", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
        "logger.wandb.mode=disabled"]
# Added with ++ so it works whether or not conf/hydra/default.yaml already lists it.
REPORT_CALLBACK = "++hydra.callbacks.sweep_report._target_=resnet_exp.app.hydra_callbacks.SweepReport"


def value(cfg: Any, key: str) -> Any:
    node = OmegaConf.select(cfg, key)
    node = OmegaConf.to_container(node, resolve=True, enum_to_str=True) if OmegaConf.is_config(node) else node
    return node.value if hasattr(node, "value") else node


def compose_recipe(recipe: str, *overrides: str) -> Any:
    register_schemas()
    bench = recipe in BENCH_RECIPES
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="bench" if bench else "config", return_hydra_config=True,
                       overrides=[f"bench_recipe={recipe}" if bench else f"experiment={recipe}", *overrides])


def test_every_recipe_is_covered() -> None:
    assert sorted(EXPECTED) == RECIPES


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_composes_with_its_numbers(recipe: str) -> None:
    cfg = compose_recipe(recipe)
    numbers, axes, shapes = EXPECTED[recipe]
    for key, expected in numbers.items():
        got = value(cfg, key)
        assert got == (pytest.approx(expected) if isinstance(expected, float) else expected), key
    assert value(cfg, "hydra.sweeper.params") == (axes or None)
    assert cfg.hydra.runtime.choices.get("bench_recipe" if recipe in BENCH_RECIPES else "experiment") == recipe
    HydraConfig.instance().set_config(cfg)  # paths.* interpolate hydra:runtime
    validate(cfg, groups=("arch", "bench", "speed") if recipe in BENCH_RECIPES else
             ("arch", "data", "module", "optimizer", "scheduler", "trainer", "speed"))
    if shapes is not None:
        size, sides = shapes
        with torch.device("meta"):  # full-size net, nothing allocated or computed
            model = instantiate(cfg.arch, num_classes=10, in_channels=3, input_size=size)
        assert [s[-1] for _, s in stage_shapes(model, (1, 3, size, size))[:-1]] == sides


def test_sweep_axes_come_from_the_recipe_and_yield_to_the_command_line() -> None:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cfg = compose_recipe("identity_mappings_ablation")
    parser = OverridesParser.create()

    def jobs(*command_line: str) -> list[list[str]]:
        params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()] + list(command_line)
        return BasicSweeper.split_arguments(parser.parse_overrides(params), None)[0]

    assert [j[0] for j in jobs()] == [f"arch.block_order={o}" for o in
                                      ("post", "bn_after_add", "relu_before_add", "relu_only_pre", "pre")]
    assert jobs("arch.block_order=pre,post") == [["arch.block_order=pre"], ["arch.block_order=post"]]


# ---------------------------------------------------------------------------- the real CLI
def job_folders(sweep: Path) -> dict[str, Path]:
    """recipe name -> job folder, read from each finished job's results.json overrides."""
    found = {}
    for results in sweep.glob("*/results.json"):
        overrides = json.loads(results.read_text())["overrides"]
        recipe = next(o.split("=", 1)[1] for o in overrides if o.startswith("experiment="))
        found.setdefault(recipe, results.parent)
    return found


def check_tiny_job(recipe: str, job: Path | None) -> str | None:
    """What is wrong with the recipe's job folder, or None."""
    if job is None:
        return "no finished job (no results.json)"
    results = json.loads((job / "results.json").read_text())
    numbers = EXPECTED[recipe][0]
    config = OmegaConf.load(job / ".hydra" / "config.yaml")
    checks = {
        "completed": results["status"] == "completed",
        "2 steps": results["steps"] == 2,
        "synthetic data": results["data"] == "synthetic" and 0.0 <= results["test/acc"] <= 1.0,
        "optimizer": results["optimizer"] == numbers["optimizer._target_"].rsplit(".", 1)[1].lower(),
        "arch": config.arch.name == numbers.get("arch.name", "custom"),
        "lr": config.optimizer.lr == pytest.approx(numbers["optimizer.lr"]),
    }
    failed = [name for name, ok in checks.items() if not ok]
    return f"{', '.join(failed)} wrong in {job}" if failed else None


@pytest.mark.slow
def test_every_training_recipe_runs_tiny(tmp_path: Path) -> None:
    """Every training recipe (but the sweep recipe, run below) as one job of one tiny multirun
    (in-process, as the basic launcher runs its jobs), with the sweep report of that multirun."""
    recipes = [r for r in TRAIN_RECIPES if r != SWEEP_RECIPE]
    sweep = tmp_path / "sweep"
    proc = train_in_process("-m", f"experiment={','.join(recipes)}", *TINY, REPORT_CALLBACK,
                            f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    jobs = job_folders(sweep)
    problems = {r: p for r in recipes if (p := check_tiny_job(r, jobs.get(r))) is not None}
    assert not problems, f"{problems}\n{explain(proc)}"
    assert proc.returncode == 0, explain(proc)
    with (sweep / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(recipes) and {r["status"] for r in rows} == {"completed"}


def test_block_order_recipe_is_a_sweep(tmp_path: Path) -> None:
    """`-m experiment=slim_bottleneck_block_order`: two jobs (post, pre) and the sweep report."""
    sweep = tmp_path / "sweep"
    proc = train_in_process("-m", f"experiment={SWEEP_RECIPE}", *TINY, REPORT_CALLBACK,
                            f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    with (sweep / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["status"], r["arch"], r["block_order"], r["depth"]) for r in rows] == [
        ("completed", "custom", "post", "20"), ("completed", "custom", "pre", "20")]
    assert "`arch.block_order=post,pre`" in (sweep / "summary.md").read_text()
    assert (sweep / "accuracy_vs_depth.png").read_bytes().startswith(b"\x89PNG")


def test_timing_recipe_runs_on_the_bench(tmp_path: Path) -> None:
    """`python -m resnet_exp.bench -m bench_recipe=resnet_v2_timing`: the four v2 nets, forward only."""
    sweep = tmp_path / "sweep"
    proc = run_in_process("resnet_exp.bench", "-m", "bench_recipe=resnet_v2_timing", "arch.width=0.125",
                          "bench.image_size=32", "bench.batch_size=2", "bench.burn_in=1", "bench.batches=2",
                          "bench.num_classes=10", "bench.device=cpu", "bench.count_flops=false",
                          f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    with (sweep / "bench.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["arch"], r["block_order"], r["mode"]) for r in rows] == [
        (f"resnet{d}v2", "pre", "forward") for d in (50, 101, 152, 200)]
    assert all(r["batch_size"] == "2" and r["dtype"] == "fp32" for r in rows)
