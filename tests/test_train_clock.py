"""TimeToAccuracy: training time excludes validation, one sync per validation, its CSV is the record
of results.json's `time_to_accuracy`, and it works without the step timer."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from resnet_exp.callbacks import StepTimer, TimeToAccuracy, time_to_accuracy_points, train_clock
from tests.helpers.cli import TINY_RUN
from tests.test_step_timer import Tiny

VAL_SLEEP_S = 0.2


class SlowValidation(Tiny):
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        time.sleep(VAL_SLEEP_S)
        x, y = batch
        self.log("val/acc", (self.net(x).argmax(1) == y).float().mean())


def fit(clock: TimeToAccuracy, root: Path, epochs: int = 2) -> pl.Trainer:
    data = TensorDataset(torch.randn(8, 3, 8, 8), torch.randint(0, 3, (8,)))
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=False, callbacks=[clock],
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=1, default_root_dir=root)
    trainer.fit(SlowValidation(), DataLoader(data, batch_size=4), DataLoader(data, batch_size=8))
    return trainer


def test_validation_is_paused_and_synchronized_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    syncs: list[torch.device] = []
    monkeypatch.setattr(train_clock, "synchronize", syncs.append)
    clock = TimeToAccuracy(output_dir=str(tmp_path))
    started = time.perf_counter()
    trainer = fit(clock, tmp_path)
    wall = time.perf_counter() - started
    points = time_to_accuracy_points(trainer)
    # One point per validation (the sanity check is none), the file is the record.
    assert [(p["epoch"], p["step"]) for p in points] == [(0, 2), (1, 4)]
    assert points == clock.points
    with (tmp_path / "time_to_accuracy.csv").open() as handle:
        assert [int(r["step"]) for r in csv.DictReader(handle)] == [2, 4]
    # Three validations sleep (sanity check included): none of it is training time.
    assert 0 < points[0]["train_time_s"] < points[1]["train_time_s"] < wall - 3 * VAL_SLEEP_S
    assert all(0.0 <= p["val/acc"] <= 1.0 and p["val/loss"] is None for p in points)
    # One sync when each real validation starts, one when training ends.
    assert len(syncs) == 3 and all(d.type == "cpu" for d in syncs)


def test_resumed_fit_keeps_the_points_its_checkpoint_covers(tmp_path: Path) -> None:
    clock = TimeToAccuracy(output_dir=str(tmp_path))
    fit(clock, tmp_path)
    first = list(clock.points)
    again = TimeToAccuracy(output_dir=str(tmp_path))
    again.on_load_checkpoint(None, None, {"global_step": 2})  # type: ignore[arg-type]
    fit(again, tmp_path, epochs=1)  # a fresh fit of one epoch: its point follows the kept one
    assert again.points[0] == first[0] and len(again.points) == 2
    assert again.points[1]["train_time_s"] > first[0]["train_time_s"]
    assert time_to_accuracy_points_of(tmp_path) == again.points


def time_to_accuracy_points_of(folder: Path) -> list[dict[str, Any]]:
    return train_clock.read_points(folder / train_clock.TTA_FILE)


def test_results_carry_time_to_accuracy_without_the_step_timer(run_config) -> None:
    from resnet_exp.pipeline import build_parts, fit_and_test

    cfg = run_config(*TINY_RUN, "trainer.max_epochs=2", "callbacks.step_timer=null")
    run_dir = Path(cfg.paths.output_dir)
    parts = build_parts(cfg)
    assert not any(isinstance(cb, StepTimer) for cb in parts.trainer.callbacks)
    fit_and_test(cfg, parts, run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["step_time"] is None and not (run_dir / "step_times.csv").exists()
    points = results["time_to_accuracy"]
    assert [p["epoch"] for p in points] == [0, 1] and [p["step"] for p in points] == [results["steps"] // 2,
                                                                                       results["steps"]]
    assert points == time_to_accuracy_points_of(run_dir)
    assert 0 < points[0]["train_time_s"] < points[1]["train_time_s"] < results["wall_time_s"]


def test_a_file_name_is_required() -> None:
    with pytest.raises(ValueError, match="callbacks.time_to_accuracy=null"):
        TimeToAccuracy(file="")
