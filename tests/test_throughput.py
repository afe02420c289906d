"""results.json's throughput block and time-to-accuracy points, checked against an independent
computation from step_times.csv, time_to_accuracy.csv and a FLOP count of a real forward pass."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from resnet_exp.models import create_model
from tests.helpers.cli import explain, run_cli


@pytest.mark.slow
def test_results_carry_images_per_s_tflops_and_time_to_accuracy(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = run_cli("resnet_exp.run", "data=synthetic", "data.image_size=8", "data.train_size=64", "data.val_size=16",
                   "data.test_size=16", "data.batch_size=8", "data.num_workers=0", "arch=resnet20",
                   "arch.width=0.125", "trainer.accelerator=cpu", "trainer.devices=1", "trainer.max_epochs=2",
                   "logger.wandb.mode=disabled", f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    results = json.loads((run / "results.json").read_text())
    tp = results["throughput"]

    with (run / "step_times.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["warmup"] == "0"]
    images = sum(int(r["batch_size"]) for r in rows)
    # Each batch's host time plus the whole gap before it (data wait and loop work).
    seconds = sum(float(r["host_ms"]) + float(r["between_ms"] or r["data_wait_ms"] or 0) for r in rows) / 1e3
    assert tp["images_per_s"] == pytest.approx(images / seconds, rel=2e-3)

    model = create_model("resnet20", num_classes=10, in_channels=3, input_size=8, width=0.125).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, 8, 8))  # real weights, real arithmetic
    train_flops = 3 * counter.get_total_flops()
    assert tp["train_flops_per_image"] == train_flops
    assert tp["tflop_per_s"] == pytest.approx(images / seconds * train_flops / 1e12, rel=2e-3)
    assert tp["mfu"] is None and tp["peak_tflops"] is None  # CPU: no peak, no MFU

    points = results["time_to_accuracy"]
    with (run / "time_to_accuracy.csv").open() as handle:
        saved = list(csv.DictReader(handle))
    assert [p["epoch"] for p in points] == [0, 1] == [int(r["epoch"]) for r in saved]
    assert [p["step"] for p in points] == [results["steps"] // 2, results["steps"]]
    times = [p["train_time_s"] for p in points]
    assert 0 < times[0] < times[1] < results["wall_time_s"]
    # Training time covers at least the timed batches (host time plus data wait of each).
    with (run / "step_times.csv").open() as handle:
        all_rows = list(csv.DictReader(handle))
    batch_s = sum(float(r["host_ms"]) for r in all_rows) / 1e3
    assert times[1] >= batch_s
    assert all(0.0 <= p["val/acc"] <= 1.0 and float(r["val/acc"]) == pytest.approx(p["val/acc"], abs=1e-6)
               for p, r in zip(points, saved))
