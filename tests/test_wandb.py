"""wandb offline: the run folder holds a finished wandb run with the config and the metrics.

The runs are in-process (wandb's own service process still runs); `wandb leet inspect` reads them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers.cli import TINY_RUN, explain, train_in_process

WANDB = str(Path(sys.executable).with_name("wandb"))


def inspect(run: Path, *flags: str) -> str:
    out = subprocess.run([WANDB, "leet", "inspect", *flags, "--json", str(run)],
                         capture_output=True, text=True, timeout=120, check=True)
    return out.stdout


def test_offline_run_is_finished_and_holds_config_and_metrics(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = train_in_process(*TINY_RUN, "logger.wandb.mode=offline", "logger.wandb.group=g1",
                            f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    (wandb_run,) = (run_dir / "wandb").glob("offline-run-*")
    # Said when the run starts and again in its summary, relative to where the command was typed.
    assert proc.stdout.count(f"wandb sync {wandb_run.relative_to(tmp_path)}") == 2, proc.stdout

    summary = json.loads(inspect(wandb_run, "--summary"))
    assert (summary["state"], summary["exit_code"]) == ("finished", 0)
    assert summary["config"]["arch"]["name"] == "resnet18"
    assert summary["config"]["arch"]["width"] == 0.125
    assert summary["config"]["choices"]["data"] == "synthetic"
    assert summary["config"]["params"] > 0
    assert "batch_size" not in summary["config"], "hyperparameters leaked as loose top-level keys"
    for key in ("val/acc", "val/acc_best", "train/loss_epoch", "test/acc"):
        assert key in summary["summary"], key

    history = [json.loads(line) for line in inspect(wandb_run).splitlines() if line.strip()]
    epochs = {r["history"]["item"].get("epoch") for r in history if r.get("type") == "history"}
    assert {0, 1} <= epochs, "per-epoch metrics missing from the history"


def test_failed_job_finishes_its_wandb_run_as_failed(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # Accepted by the schema, rejected by Lightning once fitting starts (after wandb started).
    proc = train_in_process(*TINY_RUN, "logger.wandb.mode=offline", "trainer.val_check_interval=1000",
                            f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode != 0, explain(proc)
    assert not (run_dir / "results.json").exists()
    (wandb_run,) = (run_dir / "wandb").glob("offline-run-*")
    summary = json.loads(inspect(wandb_run, "--summary"))
    assert summary["exit_code"] == 1, {k: summary.get(k) for k in ("state", "exit_code")}


def test_log_model_passes_the_checkpoints_to_wandb(tmp_path: Path) -> None:
    """logger.wandb.log_model=all: each checkpoint Lightning saves becomes a wandb artifact (offline:
    recorded in the run, staged under WANDB_DATA_DIR for `wandb sync`)."""
    run_dir = tmp_path / "run"
    proc = train_in_process(*TINY_RUN, "trainer.max_epochs=1", "logger.wandb.mode=offline",
                            "logger.wandb.log_model=all", f"hydra.run.dir={run_dir}", cwd=tmp_path,
                            WANDB_DATA_DIR=str(tmp_path / "wandb-data"))
    assert proc.returncode == 0, explain(proc)
    (wandb_run,) = (run_dir / "wandb").glob("offline-run-*")
    records = [json.loads(line) for line in inspect(wandb_run).splitlines() if line.strip()]
    artifacts = [r["artifact"] for r in records if r.get("type") == "artifact"]
    assert artifacts and all(a["type"] == "model" for a in artifacts), [a.get("type") for a in artifacts]
    assert any("best" in a["aliases"] for a in artifacts)
