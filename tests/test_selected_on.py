"""selected_on: data.val_on_test=true makes results.json and the sweep report say the test split chose
the checkpoint; with nothing to choose one, the last weights are tested and it is null."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.helpers.cli import TINY_RUN, explain, run_in_process, train_in_process


def test_checkpoint_selected_on_test_is_marked(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    job = sweep / "0"
    proc = train_in_process(*TINY_RUN, "data.val_size=0", "data.val_on_test=true", "trainer.max_epochs=1",
                            f"hydra.run.dir={job}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    results = json.loads((job / "results.json").read_text())
    assert results["selected_on"] == "test" and results["best_checkpoint"]

    proc = run_in_process("resnet_exp.report", str(sweep), "--no-plots", "-q", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    with (sweep / "summary.csv").open(newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert row["selected_on"] == "test"
    summary = (sweep / "summary.md").read_text()
    assert "**test** †" in summary and "selected on the test split" in summary


@pytest.mark.parametrize("how", [["callbacks.model_checkpoint=null"], ["trainer.limit_val_batches=0"]],
                         ids=["no best-checkpoint callback", "no validation"])
def test_last_weights_tested_is_selected_on_null(how: list[str], tmp_path: Path) -> None:
    """Nothing chose a checkpoint (no callback that selects one, or no validation to select on):
    the last weights are tested, and results.json says so."""
    run = tmp_path / "run"
    proc = train_in_process(*TINY_RUN, "trainer.max_epochs=1", *how, f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "completed" and results["steps"] == 6 and "test/acc" in results
    assert results["selected_on"] is None and results["best_checkpoint"] is None
