"""The benchmark suite beside the package (`python -m benchmarks`): its statistics, its variants,
its JSON records and the renderer that turns them into BENCHMARKS.md. Nothing here asserts a time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks import harness, overhead, render
from tests.helpers.cli import REPO_ROOT, explain, run_in_process


def test_excess_is_the_median_of_differences_paired_within_a_round() -> None:
    # Round 2 ran everything on a slow machine; the framework's round 1 got a lucky start-up.
    per_round = {"plain": {"loop": [6.0, 9.0, 6.5]},
                 "framework": {"loop": [5.0, 9.6, 7.1]},
                 "framework-no-step-timer": {"loop": [5.5, 9.2, 6.6]}}
    summary = harness.summarize(per_round, baselines=("plain", "framework"))
    # By hand: framework - plain per round = -1.0, +0.6, +0.6 -> median +0.6 (best-of would say -1.0).
    assert summary["framework"]["over"]["plain"]["median"]["loop"] == pytest.approx(0.6)
    assert summary["framework"]["over"]["plain"]["range"]["loop"] == pytest.approx([-1.0, 0.6])
    # no-step-timer - framework per round = +0.5, -0.4, -0.5 -> median -0.4.
    assert summary["framework-no-step-timer"]["over"]["framework"]["median"]["loop"] == pytest.approx(-0.4)
    assert summary["plain"]["median"]["loop"] == pytest.approx(6.5)
    assert "plain" not in summary["plain"]["over"] and "framework" not in summary["framework"]["over"]
    assert harness.rotated(["a", "b", "c"], 0) == ["a", "b", "c"]
    assert harness.rotated(["a", "b", "c"], 4) == ["b", "c", "a"]


def test_variants_build_distinct_programs(tmp_path: Path) -> None:
    import wandb

    from resnet_exp.pipeline import build_parts

    names = [v.name for v in overhead.VARIANTS]
    assert len(set(names)) == len(names) and {"plain", "lightning", "framework"} <= set(names)
    assert overhead.variant("framework-no-step-timer").overrides == ("callbacks.step_timer=null",)
    adhoc = overhead.variant("callbacks.lr_monitor=null,callbacks.step_timer=null")
    assert (adhoc.program, adhoc.overrides) == ("framework", ("callbacks.lr_monitor=null", "callbacks.step_timer=null"))
    with pytest.raises(Exception, match="unknown variant 'nope'"):
        overhead.variant("nope")

    plain = overhead.process_command(overhead.variant("plain"), ["data=synthetic"], tmp_path)
    assert plain[1:5] == ["-m", "benchmarks.overhead", "plain", str(tmp_path)]
    framework = overhead.process_command(overhead.variant("framework-no-wandb"), ["x=1"], tmp_path)
    assert framework[1:4] == ["-m", "resnet_exp.run", "x=1"] and f"hydra.run.dir={tmp_path}" in framework

    def program(v: overhead.Variant) -> tuple:
        """What a framework variant trains with: callback classes, loggers, profiler."""
        cfg = harness.compose_run_config([*overhead.base_overrides(2), *v.overrides], tmp_path / v.name)
        with harness.quiet():
            trainer = build_parts(cfg).trainer
        if wandb.run is not None:
            wandb.finish()
        return (tuple(f"{type(c).__module__}.{type(c).__name__}" for c in trainer.callbacks),
                tuple(type(lg).__name__ for lg in trainer.loggers), type(trainer.profiler).__name__)

    built = {v.name: program(v) for v in overhead.VARIANTS if v.program == "framework"}
    assert len(set(built.values())) == len(built), built
    assert "StepTimer" in str(built["framework"][0]) and "StepTimer" not in str(built["framework-no-step-timer"][0])
    assert "WandbLogger" not in built["framework-no-wandb"][1]


LOOP_MS = {"plain": [6.0, 9.0, 6.5, 6.0, 6.2], "framework": [5.0, 9.6, 7.1, 6.7, 6.9],
           "framework-no-step-timer": [4.9, 9.5, 7.0, 6.6, 6.8]}
WALL_MS = {"plain": [6.0, 9.0, 6.5, 6.0, 6.2], "framework": [5.2, 9.7, 7.3, 6.8, 7.0],
           "framework-no-step-timer": [5.2, 9.7, 7.3, 6.8, 7.0]}
VARIANTS = [{"name": "plain", "program": "plain", "overrides": []},
            {"name": "framework", "program": "framework", "overrides": []},
            {"name": "framework-no-step-timer", "program": "framework", "overrides": ["callbacks.step_timer=null"]}]


def a_record(section: str, settings: dict, results: dict) -> dict:
    return {"section": section, "command": f"python -m benchmarks --sections {section}", "settings": settings,
            "environment": {"date": "2026-12-01 10:00 UTC", "cpu": "Test CPU", "cpu_count": 16, "load": "0.5",
                            "torch": "2.14.1", "lightning": "2.6.6", "gpu": None, "code": "abc1234"},
            "results": results}


def test_renderer_turns_records_into_table_rows(tmp_path: Path) -> None:
    per_round = {n: {"loop": LOOP_MS[n], "wall": WALL_MS[n]} for n in LOOP_MS}
    (tmp_path / "overhead.json").write_text(json.dumps(a_record(
        "overhead", {"arch": "resnet20", "width": 0.25, "batch_size": 4, "image_size": 8, "steps": [20, 2020],
                     "rounds": 5, "threads": 1, "variants": VARIANTS},
        {"unit": "ms", "per_round": per_round, "summary": harness.summarize(per_round, ("plain", "framework"))})))
    us = {n: {"wall": [x * 100 for x in v]} for n, v in LOOP_MS.items()}
    (tmp_path / "attribution.json").write_text(json.dumps(a_record(
        "attribution", {"steps": 2000, "rounds": 5, "threads": 1, "variants": VARIANTS},
        {"unit": "us", "per_round": us, "summary": harness.summarize(us, ("plain", "framework"))})))
    text = render.render(tmp_path)

    assert text.startswith("# Benchmarks\n\nGenerated by `python -m benchmarks --render`")
    assert "2026-12-01 10:00 UTC, Test CPU (16 cores, load average 0.5), torch 2.14.1, pytorch-lightning 2.6.6, " \
           "code abc1234.\n\n```\npython -m benchmarks --sections overhead\n```" in text
    # framework - plain, by round: -1.0, +0.6, +0.6, +0.7, +0.7 (loop); -0.8, +0.7, +0.8, +0.8, +0.8 (wall).
    assert "| framework |  | 6.90 | +0.60 (-1.00 to +0.70) | 7.00 | +0.80 (-0.80 to +0.80) |" in text
    assert "| plain |  | 6.20 |  | 6.20 |  |" in text
    assert "**+0.60 ms per training step** (training loop), which meets the target of at most 1.0 ms" in text
    # In us: over plain -110, +50, +50, +60, +60; vs framework -10 in every round (framework variants only).
    assert "| framework-no-step-timer | `callbacks.step_timer=null` | 680 | +50 (-110 to +60) | -10 (-10 to -10) |" in text
    assert "| plain |  | 620 |  |  |" in text
    for _, title, *_ in render.SECTIONS[2:]:  # no file: how to measure it
        assert f"## {title}\n\nNot measured yet: `python -m benchmarks --sections " in text


def test_benchmarks_md_is_the_rendering_of_the_committed_results() -> None:
    records = {p.stem: json.loads(p.read_text()) for p in render.RESULTS_DIR.glob("*.json")}
    assert {"overhead", "attribution", "compile_cpu", "loader"} <= set(records)
    for name, rec in records.items():
        assert rec["section"] == name and rec["command"] and rec["environment"]["date"], name
    assert (REPO_ROOT / "BENCHMARKS.md").read_text() == render.render(), \
        "BENCHMARKS.md is out of date: python -m benchmarks --render"


@pytest.mark.slow
def test_overhead_and_attribution_run_end_to_end_and_write_records(tmp_path: Path) -> None:
    results, output = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    proc = run_in_process(
        "benchmarks", "--sections", "overhead", "attribution", "--overhead-steps", "1", "3", "--overhead-rounds", "1",
        "--overhead-variants", "plain", "framework", "--attribution-steps", "4", "--attribution-rounds", "1",
        "--attribution-variants", "plain", "lightning", "framework", "callbacks.step_timer=null",
        "--results-dir", str(results), "--output", str(output), cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    process, parts = (json.loads((results / f"{s}.json").read_text()) for s in ("overhead", "attribution"))
    assert process["command"].startswith("python -m benchmarks --sections overhead attribution --overhead-steps 1 3")
    assert process["environment"]["torch"] == torch.__version__
    assert [v["name"] for v in process["settings"]["variants"]] == ["plain", "framework"]
    assert {k: len(v) for k, v in process["results"]["per_round"]["framework"].items()} == {"loop": 1, "wall": 1}
    assert "plain" in process["results"]["summary"]["framework"]["over"]
    names = ["plain", "lightning", "framework", "callbacks.step_timer=null"]
    assert [v["name"] for v in parts["settings"]["variants"]] == names and set(parts["results"]["per_round"]) == set(names)
    assert all(parts["results"]["per_round"][n]["wall"][0] > 0 for n in names)
    assert "framework" in parts["results"]["summary"]["callbacks.step_timer=null"]["over"]
    text = output.read_text()
    assert text == render.render(results)
    assert "| framework |  |" in text and "| callbacks.step_timer=null | `callbacks.step_timer=null` |" in text


def test_loader_section_writes_one_row_per_path(tmp_path: Path) -> None:
    from benchmarks import loader

    result = loader.measure(size=256, batch_size=32, batches=2, workers=[0], log=lambda m: None)
    assert [r["path"] for r in result["rows"]][0] == "loader=torch, 0 workers"
    assert result["rows"][1]["path"].startswith("loader=gpu path on ") and len(result["rows"]) == 2
    assert all(r["images_per_s"] > 0 for r in result["rows"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU path of the gpu section")
def test_gpu_section_is_skipped_without_cuda_and_its_training_code_runs_on_cpu(tmp_path: Path) -> None:
    from benchmarks import gpu

    proc = run_in_process("benchmarks", "--sections", "gpu", "--results-dir", str(tmp_path),
                          "--output", str(tmp_path / "B.md"), cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert "no CUDA device" in proc.stderr and not (tmp_path / "gpu.json").exists()
    assert "## GPU: training throughput, step timer, speed switches, ResNet-v2 timing\n\nNot measured yet: " \
           "`python -m benchmarks --sections gpu`." in (tmp_path / "B.md").read_text()

    train = gpu.train_arch("resnet18", batch=2, steps=2, epochs=2, work=tmp_path / "fits", log=lambda m: None,
                           accelerator="cpu")
    assert train["sync_guard"] == "passed"
    assert all(train[f"{k}_ms"] > 0 for k in ("framework", "framework_no_timer", "plain", "torchvision"))
    rec = {"section": "gpu", "command": "python -m benchmarks --sections gpu", "settings": {},
           "environment": {"date": "d", "gpu": "Test GPU", "torch": "t", "cuda": "c", "lightning": "l"},
           "results": {"training": [train], "measured": {"training": "d"}}}
    tiny = ["arch.width=0.125", "bench.image_size=16", "bench.batch_size=2", "bench.burn_in=1", "bench.batches=2"]
    switch = gpu.bench_tables("switches", ["resnet18"], 2)  # the runs of one switch table, cut to two
    (title, runs), = switch.items()
    assert [label for label, _ in runs][:2] == ["fast path defaults", "bf16 off (fp32 + TF32)"]
    runs = harness.bench_runs([("two archs", ["-m", "arch=resnet18,resnet18v2", "bench.mode=[train]", *tiny])],
                              threads=1, log=lambda m: None)
    assert [(r["arch"], r["mode"]) for r in runs[0]["rows"]] == [("resnet18", "train"), ("resnet18v2", "train")]
    assert runs[0]["command"].startswith("python -m resnet_exp.bench -m arch=resnet18,resnet18v2 'bench.mode=[train]'")
    rec["results"]["switches"] = {title: runs}
    (tmp_path / "gpu.json").write_text(json.dumps(rec))
    text = render.render(tmp_path)
    assert f"{title}:" in text and "| two archs | resnet18v2 | train | fp32 |" in text
    assert "d, Test GPU, torch t (CUDA c), pytorch-lightning l." in text
    assert "| resnet18 | torchvision model, plain loop |" in text and "| passed | 3.33 |" in text


@pytest.mark.parametrize("args,words", [
    (["--overhead-steps", "3", "2"], ["--overhead-steps 3 2", "0 < N1 < N2"]),
    (["--attribution-variants", "nope"], ["unknown variant 'nope'", "framework-no-step-timer"]),
    (["--sections", "cpu"], ["--sections", "invalid choice: 'cpu'"]),
])
def test_bad_command_line_fails_with_one_line(args: list[str], words: list[str], tmp_path: Path) -> None:
    proc = run_in_process("benchmarks", *args, "--results-dir", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), explain(proc)
    assert all(w in lines[0] for w in words), lines[0]
    assert not list(tmp_path.iterdir())


def test_loader_section_rows_per_augmentation_setting() -> None:
    from benchmarks import loader

    result = loader.measure(size=128, batch_size=16, batches=1, workers=[0], augment=["autoaugment", "mix"],
                            log=lambda m: None)
    assert [(r["path"].split(" on ")[0], r["augment"]) for r in result["rows"]] == [
        ("loader=torch, 0 workers", "autoaugment"), ("loader=gpu path", "autoaugment"),
        ("loader=torch, 0 workers", "mix"), ("loader=gpu path", "mix")]
    assert all(r["images_per_s"] > 0 for r in result["rows"])
