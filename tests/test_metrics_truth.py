"""Figures in results.json and csv/metrics.csv, computed a second, independent way."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.helpers.cli import TINY_RUN, explain, train_in_process

# 96 training images in batches of 32 (3 steps an epoch), 50 validation images.
SMALL = [*TINY_RUN, "data.train_size=146", "data.val_size=50", "data.test_size=30",
         "trainer.deterministic=true", "trainer.log_every_n_steps=1"]


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def metric_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def column(rows: list[dict[str, str]], key: str) -> list[tuple[int, float]]:
    return [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same training, validated in batches of 7 (a ragged last batch of 1) and of 500."""
    base = tmp_path_factory.mktemp("eval_batch")
    dirs = (base / "b7", base / "b500")
    for run_dir, size in zip(dirs, (7, 500)):
        proc = train_in_process(*SMALL, f"data.eval_batch_size={size}", f"hydra.run.dir={run_dir}", cwd=base)
        assert proc.returncode == 0, explain(proc)
    return dirs


def test_validation_figures_do_not_depend_on_the_eval_batch_size(two_runs: tuple[Path, Path]) -> None:
    small, whole = (results(d) for d in two_runs)
    for key in ("val/loss", "val/acc", "val/acc_best", "test/loss", "test/acc"):
        assert small[key] == pytest.approx(whole[key], abs=1e-5), key


def test_train_loss_epoch_is_the_per_sample_mean_of_its_steps(two_runs: tuple[Path, Path]) -> None:
    rows = metric_rows(two_runs[0])
    steps = column(rows, "train/loss_step")
    epochs = column(rows, "train/loss_epoch")
    assert len(steps) == 6 and len(epochs) == 2
    # Every training batch holds 32 images (drop_last), so the per-sample mean is the step mean.
    for (last_step, epoch_loss), first in zip(epochs, (0, 3)):
        batch = [loss for step, loss in steps if first <= step < first + 3]
        assert epoch_loss == pytest.approx(sum(batch) / 3, rel=1e-5)
    assert last_step == 5


def test_best_val_acc_is_the_best_logged_epoch(two_runs: tuple[Path, Path]) -> None:
    rows = metric_rows(two_runs[1])
    accs = [acc for _, acc in column(rows, "val/acc")]
    assert len(accs) == 2  # the sanity-check pass is not an epoch
    assert results(two_runs[1])["val/acc_best"] == pytest.approx(max(accs))
