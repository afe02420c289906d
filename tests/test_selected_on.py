"""data.val_on_test=true: results.json and the sweep report say the test split chose the checkpoint."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.helpers.cli import TINY_RUN, explain, run_cli, run_train


def test_checkpoint_selected_on_test_is_marked(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    job = sweep / "0"
    proc = run_train(*TINY_RUN, "data.val_size=0", "data.val_on_test=true", "trainer.max_epochs=1",
                     f"hydra.run.dir={job}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    results = json.loads((job / "results.json").read_text())
    assert results["selected_on"] == "test" and results["best_checkpoint"]

    proc = run_cli("resnet_exp.report", str(sweep), "--no-plots", "-q", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    with (sweep / "summary.csv").open(newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert row["selected_on"] == "test"
    summary = (sweep / "summary.md").read_text()
    assert "**test** †" in summary and "selected on the test split" in summary
