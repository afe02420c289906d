"""A validation or checkpoint save between two training batches: step_times.csv labels the next
batch's gap (`gap_held`), and that gap stays out of between_ms statistics and images/s."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from resnet_exp.callbacks import StepTimer, step_time_summary
from tests.test_step_timer import Tiny

SAVE_S = 0.15  # each checkpoint save takes at least this long


class TinyWithVal(Tiny):
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.cross_entropy(self.net(x), y))


class SlowSave(Callback):
    """Makes every checkpoint save slow (it runs inside the save), so its place shows."""

    def on_save_checkpoint(self, *args: Any) -> None:
        time.sleep(SAVE_S)


# case -> (validate mid-epoch, checkpoint callback, labelled rows (of 2 epochs x 6 batches), label)
CASES = {
    "val": (True, None, [3, 9], "val"),
    "val+checkpoint": (True, dict(monitor=None), [3, 9], "val+checkpoint"),
    # A save every 4 optimizer steps, no validation: after the batches that end at steps 4 and 8.
    "checkpoint": (False, dict(every_n_train_steps=4, save_top_k=-1), [4, 8], "checkpoint"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_gap_after_validation_or_checkpoint_is_labelled_and_left_out(case: str, tmp_path: Path) -> None:
    validate, checkpoint, labelled, label = CASES[case]
    data = TensorDataset(torch.randn(24, 3, 8, 8), torch.randint(0, 3, (24,)))
    timer = StepTimer(output_dir=str(tmp_path), warmup_steps=0)
    callbacks: list[Callback] = [timer, SlowSave()]
    if checkpoint is not None:
        callbacks.append(ModelCheckpoint(dirpath=tmp_path / "checkpoints", **checkpoint))
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=2, logger=False, callbacks=callbacks,
                         enable_checkpointing=checkpoint is not None, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0,
                         val_check_interval=3 if validate else None, limit_val_batches=2 if validate else 0)
    val = DataLoader(data, batch_size=4) if validate else None
    trainer.fit(TinyWithVal() if validate else Tiny(), DataLoader(data, batch_size=4), val)

    with (tmp_path / "step_times.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12
    # The first batch of each epoch counts its gap from the epoch start: never labelled.
    assert [i for i, r in enumerate(rows) if r["gap_held"]] == labelled
    assert {rows[i]["gap_held"] for i in labelled} == {label}
    if checkpoint is not None:  # the save lands in the labelled gap, not in the batches
        assert all(float(rows[i]["between_ms"]) >= 0.95 * SAVE_S * 1e3 for i in labelled)

    summary = step_time_summary(trainer)  # read back from the file, as results.json gets it
    assert summary is not None and summary["gap_held_steps"] == len(labelled)
    timed = [r for r in rows if r["warmup"] == "0"]
    images = sum(int(r["batch_size"]) for r in timed)
    host = sum(float(r["host_ms"]) for r in timed)
    kept = sum(float(r["between_ms"]) for r in timed if not r["gap_held"])  # no data wait without a FetchClock
    assert summary["images_per_s"] == pytest.approx(images / (host + kept) * 1e3, rel=1e-3)
    assert summary["between_mean_ms"] == pytest.approx(kept / len(timed), rel=1e-3, abs=1e-3)
    everything = host + sum(float(r["between_ms"]) for r in timed)
    if checkpoint is not None:  # counting the saves would have cost images/s
        assert everything - (host + kept) >= len(labelled) * 0.95 * SAVE_S * 1e3
    assert timer.summary()["gap_held_steps"] == len(labelled)
