"""Shared fixtures: composed configs, tiny datasets in the original formats, CLI runners.

The helpers behind them live in `tests/helpers/` and are imported as `tests.helpers.*` (tests is
a package), never as loose top-level modules.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from resnet_exp.config import CONF_DIR, register_schemas, validate
from tests.helpers import data_files
from tests.helpers.cli import (
    TINY_RUN,
    cli_env,
    explain,
    finish_open_wandb_run,
    isolated,
    run_cli,
    run_in_process,
    train_in_process,
)

ComposeFn = Callable[..., DictConfig]


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread per test process (subprocesses get OMP_NUM_THREADS=1 from cli_env).
    With `-n 2` on two cores, two OpenMP threads per worker oversubscribe the cores, and their
    spin-waiting made a tiny training run here 7x costlier in CPU time (0.9 s vs 7.3 s)."""
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _no_wandb_run_left_open() -> Iterator[None]:
    yield
    finish_open_wandb_run()


def _compose(config_name: str, overrides: list[str]) -> DictConfig:
    register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides, return_hydra_config=True)


@pytest.fixture()
def compose_config() -> ComposeFn:
    """compose_config("arch=resnet20", ..., config_name="config"): the composed config with its
    `hydra` node, as the entry point sees it before a job starts (not validated)."""
    yield lambda *overrides, config_name="config": _compose(config_name, list(overrides))
    GlobalHydra.instance().clear()


@pytest.fixture()
def run_config(tmp_path: Path) -> ComposeFn:
    """run_config("data=synthetic", ...): a composed and validated run config, as the entry point's
    function receives it, whose output dir (`paths.output_dir`) is `tmp_path/run`, with HydraConfig set, ready for `pipeline.build_parts` / `fit_and_test`.
    `config_name="eval"` composes conf/eval.yaml instead. The test runs in tmp_path with the
    environment of a CLI call; environment, torch switches, RNG and logging are put back after."""

    def make(*overrides: str, config_name: str = "config") -> DictConfig:
        run_dir = tmp_path / "run"
        cfg = _compose(config_name, [*overrides, f"hydra.run.dir={run_dir}"])
        with open_dict(cfg):  # what Hydra fills in when a job starts
            cfg.hydra.runtime.output_dir = str(run_dir)
            cfg.hydra.job.name = "run"
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):  # the job's function gets the config without its `hydra` node
            del cfg["hydra"]
        validate(cfg)
        run_dir.mkdir(parents=True, exist_ok=True)
        return cfg

    with isolated(sys.argv[:], tmp_path, cli_env()):
        yield make


@pytest.fixture()
def small_datasets(monkeypatch: pytest.MonkeyPatch):
    """The dataset writers (tests.helpers.data_files), with tiny counts accepted by the loaders
    (the official counts and checksums are taken away for the test)."""
    data_files.accept_small(monkeypatch)
    return data_files


@pytest.fixture()
def cifar10_dir(tmp_path: Path, small_datasets) -> Path:
    """A data_dir holding a tiny CIFAR-10 in its original folder format."""
    small_datasets.write_cifar10(tmp_path / "data")
    return tmp_path / "data"


class CLI:
    """Runs `python -m <module>` in one folder, in-process or as a real subprocess."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def __call__(self, module: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return run_in_process(module, *args, cwd=self.cwd, **env)

    def train(self, *overrides: str, **env: str) -> subprocess.CompletedProcess[str]:
        return run_in_process("resnet_exp.run", *overrides, cwd=self.cwd, **env)

    def subprocess(self, module: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return run_cli(module, *args, cwd=self.cwd, **env)


@pytest.fixture()
def cli(tmp_path: Path) -> CLI:
    """cli("resnet_exp.eval", "ckpt_path=...") in-process, cli.train(...), cli.subprocess(...);
    all started in tmp_path and returning a CompletedProcess."""
    return CLI(tmp_path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first (stable otherwise): with `-n 2` the longest runs then overlap with the
    many short ones instead of leaving one worker busy at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a finished tiny run (1 epoch), one per test module."""
    work = tmp_path_factory.mktemp("trained")
    proc = train_in_process(*TINY_RUN, "trainer.max_epochs=1", f"hydra.run.dir={work / 'run'}", cwd=work)
    assert proc.returncode == 0, explain(proc)
    return work / "run"
