"""Run folders are unique per process, even for runs started in the same second."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import TINY_RUN, cli_env

# Start the entry point with Hydra's `now` resolver pinned to one instant, as if every process
# had been started in the same second (SLURM arrays, two terminals, CI).
PINNED_NOW = """
import datetime, runpy, sys
import hydra.core.utils as hydra_utils
class Pinned(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2026, 1, 1, 12, 0, 0)
hydra_utils.datetime = Pinned
module = sys.argv.pop(1)
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def start_pinned(module: str, *overrides: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", PINNED_NOW, module, *overrides], cwd=cwd,
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_runs_started_in_the_same_second_get_their_own_complete_folders(tmp_path: Path) -> None:
    runs = 3
    procs = [start_pinned("resnet_exp.run", *TINY_RUN, "trainer.max_epochs=1", f"seed={i}",
                          "logger.wandb.mode=offline", cwd=tmp_path) for i in range(runs)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * runs, "\n".join(o[-3000:] for o in outputs)
    folders = sorted((tmp_path / "outputs" / "train" / "runs").iterdir())
    assert len(folders) == runs, [f.name for f in folders]
    assert all(f.name.startswith("2026-01-01_12-00-00") for f in folders)
    seeds, wandb_ids = set(), set()
    for folder in folders:
        results = json.loads((folder / "results.json").read_text())
        seeds.add(results["seed"])
        assert f"seed={results['seed']}" in (folder / ".hydra" / "overrides.yaml").read_text()
        assert (folder / "checkpoints" / "last.ckpt").is_file()
        assert len((folder / "csv" / "metrics.csv").read_text().splitlines()) > 1
        (run,) = (folder / "wandb").glob("offline-run-*")
        wandb_ids.add(run.name.rsplit("-", 1)[1])
    assert seeds == set(range(runs)) and len(wandb_ids) == runs


def test_sweep_folders_are_unique_per_process() -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from resnet_exp.config import CONF_DIR, register_schemas

    register_schemas()
    dirs = []
    for _ in range(2):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=["paths.log_dir=/somewhere"], return_hydra_config=True)
            # Resolved twice in one process: the same folder both times.
            first = (cfg.hydra.run.dir, cfg.hydra.sweep.dir)
            assert (cfg.hydra.run.dir, cfg.hydra.sweep.dir) == first
            dirs.append(first)
    GlobalHydra.instance().clear()
    assert dirs[0][0] != dirs[1][0] and dirs[0][1] != dirs[1][1]
