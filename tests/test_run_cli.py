"""`python -m resnet_exp.run` end to end: what a run leaves behind and how it fails.

One run goes through a real process (the module fixture); the others run the same entry point
in-process."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
import torch

from tests.helpers.cli import TINY_RUN, explain, run_in_process, run_train, train_in_process

RESULT_KEYS = {
    "test/acc", "test/loss", "val/acc_best", "params", "epochs", "steps", "wall_time_s",
    "arch", "data", "optimizer", "scheduler", "overrides", "status", "seed", "best_checkpoint",
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    work = tmp_path_factory.mktemp("tiny")
    run_dir = work / "run"
    proc = run_train(*TINY_RUN, "trainer.deterministic=true", f"hydra.run.dir={run_dir}", cwd=work)
    assert proc.returncode == 0, explain(proc)
    return run_dir, proc


def test_run_writes_results_json_with_documented_keys(tiny_run) -> None:
    run_dir, _ = tiny_run
    results = json.loads((run_dir / "results.json").read_text())
    assert RESULT_KEYS <= results.keys()
    assert results["status"] == "completed"
    assert (results["arch"], results["data"], results["optimizer"]) == ("resnet18", "synthetic", "sgd")
    assert results["epochs"] == 2
    assert results["steps"] == 2 * (256 - 64) // 32
    assert "arch.width=0.125" in results["overrides"]
    assert 0.0 <= results["test/acc"] <= 1.0 and results["test/loss"] > 0
    assert 0.0 <= results["val/acc_best"] <= 1.0
    assert results["params"] > 1000


def test_run_folder_holds_config_log_checkpoints_and_csv(tiny_run) -> None:
    run_dir, _ = tiny_run
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert "data=synthetic" in (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert (run_dir / "run.log").is_file()
    checkpoints = {p.name for p in (run_dir / "checkpoints").iterdir()}
    assert "last.ckpt" in checkpoints and any(n.startswith("best") for n in checkpoints)
    results = json.loads((run_dir / "results.json").read_text())
    assert (run_dir / results["best_checkpoint"]).is_file()
    rows = list(csv.DictReader((run_dir / "csv" / "metrics.csv").open()))
    val_epochs = {row["epoch"] for row in rows if row.get("val/acc")}
    assert val_epochs == {"0", "1"}


def test_checkpoints_load_with_weights_only(tiny_run) -> None:
    run_dir, _ = tiny_run
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 1 and checkpoint["state_dict"]


def test_same_seed_same_results(tiny_run, tmp_path: Path) -> None:
    first, _ = tiny_run
    # In-process this time: the same numbers whichever way the entry point is started.
    proc = train_in_process(*TINY_RUN, "trainer.deterministic=true", f"hydra.run.dir={tmp_path / 'again'}",
                            cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    a = json.loads((first / "results.json").read_text())
    b = json.loads((tmp_path / "again" / "results.json").read_text())
    assert (a["test/loss"], a["val/acc_best"]) == (b["test/loss"], b["val/acc_best"])


@pytest.mark.slow
def test_synthetic_demo_learns(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = train_in_process(*TINY_RUN, "trainer.max_epochs=4", "data.augment=none", "optimizer=adam",
                            "optimizer.lr=0.01", "scheduler=none", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["test/acc"] > 0.4, results  # 10 classes: chance is 0.1


def test_cfg_job_prints_the_resolved_config_without_running(tmp_path: Path) -> None:
    proc = run_in_process("resnet_exp.run", "data=synthetic", "arch=resnet50", "--cfg", "job", "--resolve",
                          cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert "name: resnet50" in proc.stdout and "- arch=resnet50" in proc.stdout
    assert list(tmp_path.iterdir()) == []
