"""Lightning DDP with 2 CPU processes (gloo): a single run, and inside a multirun.

Real processes: Lightning re-runs the command line for the second rank."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.cli import TINY_RUN, explain, run_train

DDP = [*TINY_RUN, "trainer.max_epochs=1", "trainer=ddp", "trainer.devices=2",
       "trainer.accelerator=cpu", "logger.wandb.mode=offline"]
STEPS_PER_RANK = (256 - 64) // 32 // 2  # each rank sees half of the 192 training images


@pytest.mark.slow
def test_ddp_single_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = run_train(*DDP, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["steps"] == STEPS_PER_RANK
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1


@pytest.mark.slow
def test_ddp_inside_a_multirun_gives_one_folder_and_one_wandb_run_per_job(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_train("-m", *DDP, "arch.block_order=post,pre", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    # The ranks must not have re-run the sweep (Lightning #11300): exactly these two jobs exist.
    assert sorted(p.name for p in tmp_path.rglob("multirun.yaml")) == ["multirun.yaml"]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0-post", "1-pre"]
    for job in ("0-post", "1-pre"):
        assert json.loads((sweep / job / "results.json").read_text())["steps"] == STEPS_PER_RANK
        assert len(list((sweep / job / "wandb").glob("offline-run-*"))) == 1
