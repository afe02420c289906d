"""data_wait_ms is the time spent waiting for the loader, not Lightning's loop work between steps."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch.utils.data import Dataset

from resnet_exp.callbacks import StepTimer
from resnet_exp.data.resumable import EpochSampler, ResumableLoader
from tests.test_step_timer import Tiny

FETCH_S, LOOP_S = 0.03, 0.06


class SlowData(Dataset):
    def __len__(self) -> int:
        return 24

    def __getitems__(self, batch: list) -> tuple[torch.Tensor, torch.Tensor]:
        time.sleep(FETCH_S)
        return torch.randn(len(batch), 3, 8, 8), torch.randint(0, 3, (len(batch),))


class SlowLoop(Callback):
    """Work between steps that is not data loading (as logging or checkpointing would be)."""

    def on_train_batch_end(self, *args: Any) -> None:
        time.sleep(LOOP_S)


def test_data_wait_counts_fetching_only(tmp_path: Path) -> None:
    loader = ResumableLoader(SlowData(), sampler=EpochSampler(24, 4, seed=0), batch_size=4,
                             collate_fn=lambda b: b)
    timer = StepTimer(output_dir=str(tmp_path), warmup_steps=2)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, callbacks=[timer, SlowLoop()],
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path)
    trainer.fit(Tiny(), loader)
    with (tmp_path / "step_times.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["warmup"] == "0"]
    assert len(rows) == 4
    for row in rows:
        # One fetch (Lightning fetches one batch ahead) per gap; the loop's sleep is not data wait.
        assert 0.9 * FETCH_S * 1e3 <= float(row["data_wait_ms"]) < (FETCH_S + LOOP_S / 2) * 1e3, row
        assert float(row["between_ms"]) >= (FETCH_S + LOOP_S) * 1e3 * 0.95, row
