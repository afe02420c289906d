"""`python -m resnet_exp.bench`: what it writes (single run and `-m` sweep) and how it fails."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from resnet_exp.models import create_model
from resnet_exp.models.complexity import count_flops, train_flops_per_image
from tests.helpers.cli import explain, run_cli, run_in_process

TINY_BENCH = ["arch.width=0.125", "bench.image_size=16", "bench.batch_size=2", "bench.burn_in=1",
              "bench.batches=2", "bench.num_classes=10"]


def test_sweep_writes_job_files_and_one_combined_table(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_in_process("resnet_exp.bench", "-m", "arch=resnet18,resnet18v2", *TINY_BENCH,
                          "bench.mode=[forward,train]", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0-resnet18", "1-resnet18v2"]
    for job, order in (("0-resnet18", "post"), ("1-resnet18v2", "pre")):
        assert (sweep / job / "bench.log").is_file()
        payload = json.loads((sweep / job / "bench.json").read_text())
        rows = payload["rows"]
        assert [r["mode"] for r in rows] == ["forward", "train"]
        assert all(r["block_order"] == order and r["batch_size"] == 2 and r["image_size"] == 16 for r in rows)
        assert all(r["mean_ms"] > 0 and r["images_per_s"] > 0 and r["gflop_per_batch"] > 0 for r in rows)
        assert rows[1]["gflop_per_batch"] > 2 * rows[0]["gflop_per_batch"]  # backward ~ 2x forward
        assert payload["environment"]["torch"] == torch.__version__
        with (sweep / job / "bench.csv").open() as handle:
            assert len(list(csv.DictReader(handle))) == 2
    with (sweep / "bench.csv").open() as handle:
        combined = list(csv.DictReader(handle))
    assert [(r["arch"], r["mode"]) for r in combined] == [
        ("resnet18", "forward"), ("resnet18", "train"), ("resnet18v2", "forward"), ("resnet18v2", "train")]
    table = (sweep / "bench.md").read_text()
    assert table.count("\n| resnet18") == 4 and "images/s" in table
    assert "| resnet18v2 | pre | " in proc.stdout  # the combined table is printed


def test_flops_and_min_image_size() -> None:
    model = create_model("resnet50", input_size=224)
    assert count_flops(model, (1, 3, 224, 224), "forward") == pytest.approx(8.18e9, rel=0.01)
    assert model.spec.min_input_size == 32  # 7x7/2 stem + max-pool + 3 strided stages
    assert create_model("resnet18", input_size=32).spec.min_input_size == 8  # CIFAR stem


def test_training_flops_match_a_hand_count() -> None:
    """One conv and one linear layer, batch 2: forward is 2 x MACs; backward adds the weight
    gradient of both layers and the input gradient of the linear layer only (the images need none)."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
    conv_macs, linear_macs = 4 * 8 * 8 * (3 * 3 * 3), 4 * 8 * 8 * 10  # per image
    forward = 2 * (conv_macs + linear_macs)
    backward = 2 * conv_macs + 2 * (2 * linear_macs)  # conv: weight grad; linear: weight + input grad
    assert count_flops(net, (2, 3, 8, 8), "forward") == 2 * forward
    for mode in ("forward_backward", "train"):
        assert count_flops(net, (2, 3, 8, 8), mode) == 2 * (forward + backward) == 2 * 43008
    assert train_flops_per_image(net, (3, 8, 8)) == forward + backward < 3 * forward
    with pytest.raises(ValueError, match="mode=sideways"):
        count_flops(net, (1, 3, 8, 8), "sideways")


def test_training_flops_of_a_net_whose_last_map_is_one_pixel() -> None:
    """resnet18 at 32 px ends on a 1x1 map: one image still counts (train-mode BN would refuse it)."""
    model = create_model("resnet18", num_classes=10, input_size=32, stem="imagenet")
    flops = train_flops_per_image(model, (3, 32, 32))
    assert flops is not None and 2 * count_flops(model, (1, 3, 32, 32), "forward") < flops


BAD_INPUTS = [
    ("bench.mode=[forward,sideways]", ["bench.mode", "sideways", "forward_backward", "train"]),
    ("bench.batch_size=0", ["bench.batch_size=0", "> 0"]),
    ("bench.image_size=4", ["bench.image_size=4", "too small", ">= 8"]),
]
if not torch.cuda.is_available():
    BAD_INPUTS.append(("bench.device=cuda", ["bench.device=cuda", "no CUDA device", "cpu"]))


@pytest.mark.parametrize("override,words,runner", [
    *((override, words, run_in_process) for override, words in BAD_INPUTS),
    # One as a real process: exit code 2 and one line as the shell sees them.
    (*BAD_INPUTS[1], run_cli)], ids=[o for o, _ in BAD_INPUTS] + [f"{BAD_INPUTS[1][0]}-subprocess"])
def test_bad_input_fails_with_one_line(override: str, words: list[str], runner, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = runner("resnet_exp.bench", "arch=resnet18", *TINY_BENCH, override, f"hydra.run.dir={run_dir}",
                  cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert "Traceback" not in proc.stderr, explain(proc)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), explain(proc)
    for word in words:
        assert word in lines[0], (override, word, lines[0])
    assert not run_dir.exists(), (override, sorted(p.name for p in run_dir.iterdir()))


def test_speed_plan_defaults_follow_the_device_and_switches_are_kept() -> None:
    from resnet_exp import speed

    plan = speed.plan({"accelerator": "cpu", "precision": None, "benchmark": None}, {})
    assert (plan.cuda, plan.precision, plan.cudnn_benchmark, plan.channels_last, plan.tf32, plan.compile) == (
        False, "32-true", False, False, False, False)
    forced = speed.plan({"accelerator": "cpu", "precision": "bf16-mixed", "benchmark": True},
                        {"channels_last": True, "tf32": True})
    assert (forced.precision, forced.cudnn_benchmark, forced.channels_last, forced.tf32) == (
        "bf16-mixed", True, True, True)
    assert forced.trainer_kwargs() == {"precision": "bf16-mixed", "benchmark": True}


def test_channels_last_keeps_weights_names_and_outputs() -> None:
    from resnet_exp import speed

    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10, input_size=16, width=0.125).eval()
    x = torch.randn(2, 3, 16, 16)
    expected = model(x)
    keys = list(model.state_dict())
    speed.plan({"accelerator": "cpu"}, {"channels_last": True}).prepare_model(model)
    assert list(model.state_dict()) == keys
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    seen = []
    model.conv1.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    assert torch.allclose(model(x), expected, atol=1e-5)
    assert seen[0].is_contiguous(memory_format=torch.channels_last)  # inputs converted too


