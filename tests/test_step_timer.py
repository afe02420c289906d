"""StepTimer: what it writes, that its statistics agree with its CSV, warm-up, lazy CUDA reads.

The callback runs in-process under a tiny Lightning fit (a few seconds); one CLI run checks that a
training run leaves step_times.csv and the `step_time` block of results.json. No timing is
asserted: overhead is measured by `python -m benchmarks`, not here.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from resnet_exp.callbacks import StepTimer, step_time_summary
from resnet_exp.callbacks.step_stats import CSV_COLUMNS, StepRow, append_csv, continue_csv, describe, step_time_block
from resnet_exp.callbacks.step_stats import read_csv as read_rows
from tests.helpers.cli import TINY_RUN


class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.LazyLinear(3))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


class RecompilesOnce(Tiny):
    """Pretends torch.compile compiled a graph during batch 8 of the fit."""

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.global_step == 8:
            from torch._dynamo.utils import counters

            counters["stats"]["unique_graphs"] += 1
        return super().training_step(batch, batch_idx)


def fit(timer: StepTimer, root: Path, samples: int = 22, batch: int = 4, epochs: int = 2,
        module: type = Tiny) -> pl.Trainer:
    """A few CPU steps; 22 samples in batches of 4 leave a ragged last batch of 2 every epoch."""
    data = TensorDataset(torch.randn(samples, 3, 8, 8), torch.randint(0, 3, (samples,)))
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=pl.loggers.CSVLogger(root),
                         callbacks=[timer], enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=root)
    trainer.fit(module(), DataLoader(data, batch_size=batch))
    return trainer


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_describe_matches_numpy() -> None:
    values = [5.0, 1.0, 3.0, 9.0, 7.0]
    stats = describe(values)
    assert stats["mean_ms"] == 5.0 and stats["median_ms"] == 5.0
    assert (stats["min_ms"], stats["max_ms"]) == (1.0, 9.0)
    assert stats["std_ms"] == pytest.approx(np.std(values), abs=1e-4)
    assert stats["p90_ms"] == pytest.approx(np.percentile(values, 90), abs=1e-4)
    assert describe([])["mean_ms"] is None


def test_csv_rows_warmup_and_stats_agree(tmp_path: Path) -> None:
    timer = StepTimer(output_dir=str(tmp_path), warmup_steps=2, resolve_every_n_steps=3)
    trainer = fit(timer, tmp_path)
    rows = read_csv(tmp_path / "step_times.csv")
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    assert len(rows) == 2 * 6  # 6 batches per epoch
    assert [int(r["epoch"]) for r in rows] == [0] * 6 + [1] * 6
    assert [int(r["batch_size"]) for r in rows] == [4, 4, 4, 4, 4, 2] * 2
    # Warm-up: the first 2 batches of the fit, and the ragged batch the first time only.
    assert [r["warmup"] for r in rows] == list("110001" "000000")
    assert all(float(r["device_ms"]) == float(r["host_ms"]) > 0 for r in rows)  # CPU: host clock
    assert all(float(r["between_ms"]) >= 0 for r in rows)
    # A plain DataLoader has no FetchClock: no data wait is claimed (tests/test_data_wait.py).
    assert all(r["data_wait_ms"] in ("", "nan") for r in rows)

    summary = step_time_summary(trainer)
    assert summary is not None and summary["timer"] == "host" and summary["device"] == "cpu"
    timed = [r for r in rows if r["warmup"] == "0"]
    device_ms = np.array([float(r["device_ms"]) for r in timed])
    assert (summary["steps"], summary["timed_steps"], summary["warmup_steps"]) == (12, 9, 3)
    assert summary["mean_ms"] == pytest.approx(device_ms.mean(), rel=1e-3)
    assert summary["median_ms"] == pytest.approx(np.median(device_ms), rel=1e-3)
    assert summary["p99_ms"] == pytest.approx(np.percentile(device_ms, 99), rel=1e-3)
    assert summary["max_ms"] == pytest.approx(device_ms.max(), rel=1e-3)
    images = sum(int(r["batch_size"]) for r in timed)
    assert summary["images_per_s_device"] == pytest.approx(images / device_ms.sum() * 1e3, rel=1e-3)
    between = sum(float(r["between_ms"]) for r in timed)
    assert summary["data_wait_share"] == 0
    assert summary["images_per_s"] == pytest.approx(images / (between + device_ms.sum()) * 1e3, rel=1e-3)
    assert summary["peak_mem_mb"] > 0 and summary["csv"] == "step_times.csv"
    assert [e["epoch"] for e in summary["per_epoch"]] == [0, 1]
    assert [e["timed_steps"] for e in summary["per_epoch"]] == [3, 6]
    # Each epoch's peak memory is on its last row; the fit's is the highest of them.
    peaks = [r["peak_mem_mb"] for r in rows]
    assert all(p == "" for i, p in enumerate(peaks) if i not in (5, 11)) and float(peaks[5]) > 0
    assert [e["peak_mem_mb"] for e in summary["per_epoch"]] == [float(peaks[5]), float(peaks[11])]
    assert summary["peak_mem_mb"] == max(float(peaks[5]), float(peaks[11]))
    json.dumps(summary)  # results.json-ready

    # `summary` above is read back from the CSV alone (as results.json gets it, also under
    # ddp_spawn); the timer's own rows give the same statistics.
    back = timer.summary()
    for key in ("steps", "timed_steps", "mean_ms", "p90_ms", "images_per_s", "data_wait_share"):
        assert back[key] == pytest.approx(summary[key], rel=1e-3), key
    # (the CSV holds times rounded to 4 decimals, hence the tolerance)
    assert [e["mean_ms"] for e in back["per_epoch"]] == pytest.approx(
        [e["mean_ms"] for e in summary["per_epoch"]], rel=1e-3)

    # Every logger got the per-epoch statistics.
    logged = read_csv(Path(trainer.logger.log_dir) / "metrics.csv")
    means = [float(r["step_time/mean_ms"]) for r in logged if r.get("step_time/mean_ms")]
    assert means == pytest.approx([e["mean_ms"] for e in summary["per_epoch"]], rel=1e-3)


def test_batch_that_compiled_is_warmup(tmp_path: Path) -> None:
    timer = StepTimer(output_dir=str(tmp_path), warmup_steps=0)
    fit(timer, tmp_path, samples=24, module=RecompilesOnce)
    flags = [r["warmup"] for r in read_csv(tmp_path / "step_times.csv")]
    # Batch 0 brings the first shape; batch 8 compiled.
    assert flags == list("100000001000")
    assert timer.summary()["warmup_steps"] == 2


class FakeEvent:
    """A CUDA event stand-in: the 'GPU' finishes an event 4 records after it was recorded."""

    records = 0
    syncs = 0

    def record(self) -> None:
        FakeEvent.records += 1
        self.index, self.time = FakeEvent.records, FakeEvent.records * 10.0

    def query(self) -> bool:
        return FakeEvent.records - self.index >= 4

    def synchronize(self) -> None:
        FakeEvent.syncs += 1
        FakeEvent.records += 4  # everything recorded so far is finished

    def elapsed_time(self, end: FakeEvent) -> float:
        assert end.query(), "read before the event finished"
        return end.time - self.time


class FakeCudaTimer(StepTimer):
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_fit_start(trainer, pl_module)
        self._cuda = True
        self.syncs_during_epoch: list[int] = []
        self.events_made = 0

    def on_train_batch_end(self, *args: Any) -> None:
        super().on_train_batch_end(*args)
        self.syncs_during_epoch.append(FakeEvent.syncs)

    def _new_event(self) -> FakeEvent:
        self.events_made += 1
        return FakeEvent()

    def _reset_peak_mem(self) -> None:
        pass

    def _peak_mem_mb(self) -> float:
        return 1.0


def test_cuda_events_are_read_lazily_without_sync_per_step(tmp_path: Path) -> None:
    FakeEvent.records = FakeEvent.syncs = 0
    timer = FakeCudaTimer(output_dir=str(tmp_path), warmup_steps=0, resolve_every_n_steps=2)
    fit(timer, tmp_path, samples=24, epochs=2)
    # Never a wait inside an epoch: one synchronize at each epoch end.
    assert timer.syncs_during_epoch == [0] * 6 + [1] * 6
    assert FakeEvent.syncs == 2
    assert timer.events_made == 2 * 12  # a start and an end event per batch, none kept after reading
    rows = read_csv(tmp_path / "step_times.csv")
    assert len(rows) == 12
    # Start and end of a batch are two consecutive records: 10 "ms" apart in the fake clock.
    assert [float(r["device_ms"]) for r in rows] == [10.0] * 12
    assert timer.summary()["timer"] == "cuda_events" and timer.summary()["mean_ms"] == 10.0


def test_training_run_writes_step_times_and_results_block(run_config) -> None:
    """The pipeline with the run's configured callbacks (in-process: the CLI is tested elsewhere)."""
    from resnet_exp.pipeline import build_parts, fit_and_test

    cfg = run_config(*TINY_RUN, "trainer.max_epochs=1", "callbacks.step_timer.warmup_steps=1")
    run_dir = Path(cfg.paths.output_dir)
    returned = fit_and_test(cfg, build_parts(cfg), run_dir)
    rows = read_csv(run_dir / "step_times.csv")
    results = json.loads((run_dir / "results.json").read_text())
    assert results == json.loads(json.dumps(returned))
    block = results["step_time"]
    assert len(rows) == block["steps"] == results["steps"]
    timed = [float(r["device_ms"]) for r in rows if r["warmup"] == "0"]
    assert block["timed_steps"] == len(timed) >= 1
    assert block["mean_ms"] == pytest.approx(float(np.mean(timed)), rel=1e-3)
    assert block["timer"] == "host" and not math.isnan(block["images_per_s"])
    # The block is one pure function of the record's rows.
    warmup = {"steps": 1, "new_shape": True, "compile": True}
    expected = step_time_block(read_rows(run_dir / "step_times.csv"), device="cpu", cuda=False, warmup=warmup,
                               csv_file="step_times.csv")
    assert block == json.loads(json.dumps(expected))
    assert block["peak_mem_mb"] > 0 and block["per_epoch"][0]["peak_mem_mb"] == block["peak_mem_mb"]
    assert results["speed"]["precision"] == "32-true" and results["speed"]["cuda"] is False


def row(epoch: int, step: int, ms: float, warmup: bool = False, peak: float = math.nan) -> StepRow:
    return StepRow(epoch, step, 4, ms, math.nan, warmup, device_ms=ms, between_ms=1.0, peak_mem_mb=peak)


def test_step_time_block_is_a_pure_function_of_the_rows(tmp_path: Path) -> None:
    rows = [row(0, 0, 9.0, warmup=True), row(0, 1, 2.0), row(0, 2, 4.0, peak=50.0), row(1, 3, 6.0, peak=70.0)]
    path = tmp_path / "step_times.csv"
    continue_csv(path, 0)
    append_csv(path, rows)
    back = read_rows(path)
    block = step_time_block(back, device="cuda:0 (X)", cuda=True, warmup={"steps": 1}, csv_file="step_times.csv")
    assert block == step_time_block(rows, device="cuda:0 (X)", cuda=True, warmup={"steps": 1},
                                    csv_file="step_times.csv")
    assert (block["timer"], block["peak_mem"], block["device"]) == ("cuda_events", "cuda_max_allocated", "cuda:0 (X)")
    assert (block["steps"], block["timed_steps"], block["mean_ms"], block["peak_mem_mb"]) == (4, 3, 4.0, 70.0)
    assert [(e["epoch"], e["steps"], e["peak_mem_mb"]) for e in block["per_epoch"]] == [(0, 3, 50.0), (1, 1, 70.0)]
    host = step_time_block(back, device="cpu", cuda=False, warmup={}, csv_file=None)
    assert (host["timer"], host["peak_mem"], host["csv"]) == ("host", "host_max_rss", None)


def test_a_record_without_the_peak_memory_column_is_continued(tmp_path: Path) -> None:
    """A step_times.csv of 8 columns (no peak_mem_mb) reads, and a resumed fit continues it."""
    path = tmp_path / "step_times.csv"
    path.write_text("epoch,step,batch_size,device_ms,host_ms,data_wait_ms,warmup,between_ms\n"
                    "0,0,4,2.0,2.0,,1,\n0,1,4,3.0,3.0,,0,1.0\n0,2,4,3.0,3.0,,0,1.0\n")
    kept = continue_csv(path, steps_done=2)
    assert [(r.step, r.device_ms, math.isnan(r.peak_mem_mb)) for r in kept] == [(0, 2.0, True), (1, 3.0, True)]
    assert path.read_text().splitlines()[0] == ",".join(CSV_COLUMNS)
    assert [r.step for r in read_rows(path)] == [0, 1]
