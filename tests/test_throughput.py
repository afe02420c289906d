"""results.json's throughput block and time-to-accuracy points, checked against an independent
computation from step_times.csv, time_to_accuracy.csv and a FLOP count of a real training step;
the bench counts the same FLOPs for the same net and input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from resnet_exp.models import create_model
from tests.helpers.cli import explain, run_in_process


@pytest.mark.slow
def test_results_carry_images_per_s_tflops_and_time_to_accuracy(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = run_in_process("resnet_exp.run", "data=synthetic", "data.image_size=8", "data.train_size=64",
                          "data.val_size=16", "data.test_size=16", "data.batch_size=8", "data.num_workers=0",
                          "arch=resnet20", "arch.width=0.125", "trainer.accelerator=cpu", "trainer.devices=1",
                          "trainer.max_epochs=2", "logger.wandb.mode=disabled", f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    results = json.loads((run / "results.json").read_text())
    tp = results["throughput"]

    with (run / "step_times.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["warmup"] == "0"]
    images = sum(int(r["batch_size"]) for r in rows)
    # Each batch's host time plus the whole gap before it (data wait and loop work).
    seconds = sum(float(r["host_ms"]) + float(r["between_ms"] or r["data_wait_ms"] or 0) for r in rows) / 1e3
    assert tp["images_per_s"] == pytest.approx(images / seconds, rel=2e-3)

    model = create_model("resnet20", num_classes=10, in_channels=3, input_size=8, width=0.125)
    with FlopCounterMode(display=False) as counter:  # real weights, real arithmetic, a real step
        nn.functional.cross_entropy(model(torch.zeros(2, 3, 8, 8)), torch.zeros(2, dtype=torch.long)).backward()
    train_flops = counter.get_total_flops() // 2
    assert tp["train_flops_per_image"] == train_flops
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.zeros(1, 3, 8, 8))
    # The first conv computes no input gradient: 3 x forward would overstate by about 1%.
    assert 1.005 < 3 * counter.get_total_flops() / train_flops < 1.03
    assert tp["tflop_per_s"] == pytest.approx(images / seconds * train_flops / 1e12, rel=2e-3)
    assert tp["mfu"] is None and tp["peak_tflops"] is None  # CPU: no peak, no MFU

    # The bench counts the same training FLOPs for the same net and input, so the two MFUs agree.
    bench = tmp_path / "bench"
    proc = run_in_process("resnet_exp.bench", "arch=resnet20", "arch.width=0.125", "bench.image_size=8",
                          "bench.batch_size=4", "bench.num_classes=10", "bench.burn_in=0", "bench.batches=1",
                          "bench.device=cpu", "bench.mode=[forward_backward,train]", f"hydra.run.dir={bench}",
                          cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    rows = json.loads((bench / "bench.json").read_text())["rows"]
    assert [r["flops_per_image"] for r in rows] == [train_flops, train_flops]
    assert all(r["gflop_per_batch"] == round(4 * train_flops / 1e9, 2) for r in rows)

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
