"""The CSV logger: Lightning's files and columns, and a history that survives resumes and kills."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.callbacks import LearningRateMonitor
from torch.utils.data import DataLoader, TensorDataset

from resnet_exp.loggers import CSVLogger
from tests.test_step_timer import Tiny


class LogsEveryStep(Tiny):
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        self.log("train/loss", loss, on_step=True, on_epoch=True)
        return loss


def fit(logger: pl.loggers.Logger, root: Path) -> pl.Trainer:
    pl.seed_everything(0)
    data = TensorDataset(torch.randn(24, 3, 8, 8), torch.randint(0, 3, (24,)))
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=2, logger=logger, log_every_n_steps=2,
                         callbacks=[LearningRateMonitor(logging_interval="step")], enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=root)
    logger.log_hyperparams({"lr": 0.01, "arch": {"depth": 20}})
    trainer.fit(LogsEveryStep(), DataLoader(data, batch_size=4))
    return trainer


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_files_and_rows_are_those_of_lightnings_logger(tmp_path: Path) -> None:
    ours = fit(CSVLogger(tmp_path / "ours", name="csv", version=""), tmp_path / "ours")
    fit(pl.loggers.CSVLogger(tmp_path / "theirs", name="csv", version=""), tmp_path / "theirs")
    folder = tmp_path / "ours" / "csv"
    assert (folder / "metrics.csv").read_text() == (tmp_path / "theirs" / "csv" / "metrics.csv").read_text()
    assert yaml.safe_load((folder / "hparams.yaml").read_text()) == {"lr": 0.01, "arch": {"depth": 20}}
    assert Path(ours.log_dir) == folder  # where a profiler writes its report, as with Lightning's logger
    assert any(r.get("lr-SGD") for r in rows(folder / "metrics.csv"))  # LearningRateMonitor logs through it


def test_history_is_continued_and_a_new_column_rewrites_the_file(tmp_path: Path) -> None:
    first = CSVLogger(tmp_path)
    first.log_metrics({"a": 1.0, "epoch": 0}, step=0)
    first.finalize("success")
    second = CSVLogger(tmp_path)  # a resumed run: the same folder
    second.log_metrics({"a": 2.0, "epoch": 1}, step=1)
    second.log_metrics({"b": torch.tensor(3.0), "epoch": 1}, step=1)
    second.finalize("success")
    path = tmp_path / "csv" / "metrics.csv"
    assert path.read_text().splitlines()[0] == "a,b,epoch,step"
    assert [(r["a"], r["b"], r["step"]) for r in rows(path)] == [("1.0", "", "0"), ("2.0", "", "1"), ("", "3.0", "1")]
    assert not list(path.parent.glob(".*.tmp"))


def test_a_line_cut_short_by_a_kill_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "csv" / "metrics.csv"
    path.parent.mkdir(parents=True)
    path.write_text("a,epoch,step\n1.0,0,0\n2.0,0")  # killed while writing the second row
    logger = CSVLogger(tmp_path)
    logger.log_metrics({"a": 3.0, "epoch": 0}, step=1)
    logger.save()
    assert path.read_text() == "a,epoch,step\n1.0,0,0\n3.0,0,1\n"


def test_rows_logged_again_after_a_resume_are_dropped_at_the_end(tmp_path: Path) -> None:
    first = CSVLogger(tmp_path)
    for step in (0, 1):
        first.log_metrics({"a": float(step), "epoch": 0}, step=step)
    first.save()  # then killed: the resumed run logs step 1 again
    second = CSVLogger(tmp_path)
    second.log_metrics({"a": 10.0, "epoch": 0}, step=1)
    second.finalize("success")
    assert [(r["step"], r["a"]) for r in rows(tmp_path / "csv" / "metrics.csv")] == [("0", "0.0"), ("1", "10.0")]


def test_rows_are_flushed_every_n_steps(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, flush_logs_every_n_steps=3)
    path = tmp_path / "csv" / "metrics.csv"
    for step in range(2):
        logger.log_metrics({"a": 1.0}, step=step)
    assert not path.exists()
    logger.log_metrics({"a": 1.0}, step=2)
    assert len(rows(path)) == 3
