"""`python -m resnet_exp.report <sweep dir>` and the SweepReport Hydra callback, on a hand-made sweep."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import RunMode
from omegaconf import OmegaConf

from resnet_exp.app.hydra_callbacks import SweepReport
from resnet_exp.report.__main__ import main
from resnet_exp.report.tables import build_report
from tests.helpers.cli import explain, run_cli, run_in_process

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COMMON = ["data=synthetic", "trainer.max_epochs=1"]


def make_job(sweep: Path, name: str, num: int, overrides: list[str], arch: dict[str, Any],
             results: dict[str, Any] | None = None, log: str = "") -> Path:
    """A job folder as Hydra and run.py leave it: .hydra/{config,hydra,overrides}.yaml, run.log,
    and results.json if the job finished."""
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    config = {"arch": {"_target_": "resnet_exp.models.create_model", "depth": None, **arch},
              "data": {"name": "synthetic", "data_dir": "${paths.data_dir}"}, "seed": 42}
    hydra = {"hydra": {"job": {"num": num}, "runtime": {"choices": {"arch": arch["name"], "data": "synthetic"}}}}
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides + COMMON))
    (job / "run.log").write_text(log or "[INFO] - training\n")
    if results is not None:
        payload = {"status": "completed", "arch": arch["name"], "data": "synthetic",
                   "overrides": overrides + COMMON, "epochs": 1, "steps": 10, **results}
        (job / "results.json").write_text(json.dumps(payload))
    return job


def step_time(median_ms: float) -> dict[str, Any]:
    return {"timer": "host", "median_ms": median_ms, "mean_ms": median_ms * 1.1, "images_per_s": 3200.0 / median_ms}


@pytest.fixture()
def sweep(tmp_path: Path) -> Path:
    """2 depths x 2 block orders finished (one without a step_time block), one job that failed,
    one whose folder holds only the callback's job_status.json, one interrupted."""
    sweep = tmp_path / "multiruns" / "2026-11-23_12-00-00"
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {
        "overrides": {"task": ["arch=resnet20,resnet56", "arch.block_order=post,pre", *COMMON]},
        "sweeper": {"params": None}}}))
    jobs = [("resnet20", "post", 0.80, 0.78, 5.0, 272474), ("resnet20", "pre", 0.82, 0.79, 5.5, 272282),
            ("resnet56", "post", 0.85, 0.83, 13.0, 855770), ("resnet56", "pre", 0.86, 0.84, None, 855578)]
    for num, (arch, order, val, test, ms, params) in enumerate(jobs):
        results = {"val/acc_best": val, "test/acc": test, "params": params, "wall_time_s": 12.5 + num,
                   "test/loss": 0.5}
        if ms is not None:
            results["step_time"] = step_time(ms)
            # 2 MFLOP per training image; no MFU (a CPU run); two validations.
            results["throughput"] = {"images_per_s": 3200.0 / ms, "tflop_per_s": 3200.0 / ms * 2e6 / 1e12,
                                     "mfu": None}
            results["time_to_accuracy"] = [{"epoch": 0, "step": 5, "train_time_s": 0.05 * ms, "val/acc": val - 0.1},
                                           {"epoch": 1, "step": 10, "train_time_s": 0.1 * ms, "val/acc": val}]
        make_job(sweep, f"{num}-{arch}-{order}", num, [f"arch={arch}", f"arch.block_order={order}"],
                 {"name": arch, "block_order": order}, results)
    make_job(sweep, "4-resnet110-post", 4, ["arch=resnet110", "arch.block_order=post"],
             {"name": "resnet110", "block_order": "post"},
             log="Traceback (most recent call last):\n  ...\nRuntimeError: out of memory\n")
    gone = sweep / "5-resnet1202-pre"  # failed while setting up: run.py removed .hydra, the callback wrote this
    gone.mkdir()
    (gone / "job_status.json").write_text(json.dumps({
        "status": "failed", "error": "data=cifar10: files not found in data/", "job_num": 5,
        "overrides": ["arch=resnet1202", "arch.block_order=pre", *COMMON]}))
    make_job(sweep, "6-custom-pre", 6, ["arch=custom", "arch.block_order=pre"],
             {"name": "custom", "block": "bottleneck", "blocks": [2, 2, 2], "block_order": "pre"})
    return sweep


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_summary_csv_has_one_row_per_job_in_job_order(sweep: Path) -> None:
    report = build_report(sweep)
    rows = read_csv(sweep / "summary.csv")
    assert [r["job"] for r in rows] == ["0-resnet20-post", "1-resnet20-pre", "2-resnet56-post", "3-resnet56-pre",
                                        "4-resnet110-post", "5-resnet1202-pre", "6-custom-pre"]
    assert [r["status"] for r in rows] == ["completed"] * 4 + ["failed", "failed", "interrupted"]
    assert (report.count("completed"), report.count("failed"), report.count("interrupted")) == (4, 2, 1)
    first = rows[0]
    assert first["overrides"].split() == ["arch=resnet20", "arch.block_order=post", *COMMON]
    assert (first["arch"], first["depth"], first["block_order"], first["data"]) == ("resnet20", "20", "post", "synthetic")
    assert (first["params"], first["val_acc_best"], first["test_acc"]) == ("272474", "0.8", "0.78")
    assert (float(first["step_median_ms"]), float(first["images_per_s"])) == (5.0, 640.0)
    assert float(first["tflop_per_s"]) == pytest.approx(640.0 * 2e6 / 1e12) and first["mfu"] == ""
    assert float(first["wall_time_s"]) == 12.5
    assert rows[3]["step_median_ms"] == rows[3]["images_per_s"] == rows[3]["tflop_per_s"] == ""  # no blocks: blank
    # Jobs without results.json: what the folder tells (depth from the name, or a custom layout).
    assert (rows[4]["arch"], rows[4]["depth"], rows[4]["test_acc"]) == ("resnet110", "110", "")
    assert rows[4]["error"] == "RuntimeError: out of memory"  # the end of the traceback in run.log
    assert rows[5]["overrides"].startswith("arch=resnet1202 ") and "files not found" in rows[5]["error"]
    assert (rows[5]["arch"], rows[5]["depth"], rows[5]["block_order"]) == ("resnet1202", "1202", "pre")
    assert (rows[6]["arch"], rows[6]["depth"], rows[6]["block_order"]) == ("custom", "20", "pre")


def test_summary_md_table(sweep: Path) -> None:
    build_report(sweep)
    text = (sweep / "summary.md").read_text()
    assert "7 jobs: 4 completed, 2 failed, 1 interrupted" in text
    assert "`arch=resnet20,resnet56`" in text and "`arch.block_order=post,pre`" in text  # the sweep axes
    assert f"Overrides of every job: `{' '.join(COMMON)}`" in text
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    header, rows = lines[0], lines[1:]
    for column in ("job", "overrides", "arch", "depth", "block order", "data", "params", "best val acc %",
                   "test acc %", "median step ms", "images/s", "TFLOP/s", "wall time s", "status", "error"):
        assert f" {column} |" in header
    assert "MFU" not in header  # no job ran on a GPU with a known peak
    assert len(rows) == 7
    assert rows[0].startswith("| 0-resnet20-post | completed | `arch=resnet20 arch.block_order=post` | resnet20 | 20 | post |")
    assert "| 0.27M | 80.00 | 78.00 | 5.00 | 640 | 0.00128 |" in rows[0]
    assert "| failed |" in rows[4] and "| interrupted |" in rows[6]


def test_plots_are_png_files(sweep: Path) -> None:
    report = build_report(sweep)
    for name in ("accuracy_vs_depth.png", "step_time_vs_depth.png", "time_to_accuracy.png"):
        data = (sweep / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
        assert sweep / name in report.files
    assert report.skipped_plots == []


def test_plots_skipped_without_data(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    make_job(sweep, "0", 0, ["arch=resnet20"], {"name": "resnet20", "block_order": "post"},
             log="Error executing job with overrides: ['arch=resnet20']\n")
    report = build_report(sweep)
    assert report.skipped_plots == ["accuracy_vs_depth.png", "step_time_vs_depth.png", "time_to_accuracy.png"]
    assert not list(sweep.glob("*.png")) and (sweep / "summary.md").is_file()
    assert read_csv(sweep / "summary.csv")[0]["status"] == "failed"


def test_cli_rebuilds_report_and_prints_table(sweep: Path, tmp_path: Path) -> None:
    proc = run_in_process("resnet_exp.report", str(sweep), cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert "| 3-resnet56-pre | completed |" in proc.stdout and "summary.csv" in proc.stdout
    assert (sweep / "summary.csv").is_file() and (sweep / "accuracy_vs_depth.png").is_file()


@pytest.mark.parametrize("kind", ["missing", "file", "empty", "single_run", "bench"])
def test_bad_sweep_dir_is_one_line_exit_2(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "not_a_sweep"
    if kind == "file":
        path.write_text("x")
    elif kind == "empty":
        (path / "some_folder").mkdir(parents=True)
    elif kind == "single_run":
        (path / ".hydra").mkdir(parents=True)
        (path / ".hydra" / "overrides.yaml").write_text("[]\n")
    elif kind == "bench":
        (path / "0" / ".hydra").mkdir(parents=True)
        (path / "0" / ".hydra" / "overrides.yaml").write_text("[]\n")
        (path / "0" / "bench.json").write_text("{}")
    assert main([str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith(f"error: {path}: ")
    if kind == "bench":
        assert "resnet_exp.bench" in err and "bench.md" in err and "results.json" in err
    elif kind == "single_run":  # a run folder gets curves.png, which needs the run's logs
        assert "csv/metrics.csv" in err and "curves.png" in err
    else:
        assert "multirun folder" in err and ".hydra" in err


def test_bad_sweep_dir_through_the_cli(tmp_path: Path) -> None:
    """A real process: exit code 2, one line, no traceback."""
    proc = run_cli("resnet_exp.report", "/not/a/sweep", cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert proc.stderr.startswith("error: /not/a/sweep: no such directory; expected a Hydra multirun folder")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def job_config(sweep: Path, job: str, mode: RunMode = RunMode.MULTIRUN) -> Any:
    return OmegaConf.create({
        "logger": {"wandb": {"mode": "disabled"}},
        "hydra": {"mode": mode, "sweep": {"dir": str(sweep)}, "job": {"num": 7},
                  "runtime": {"output_dir": str(sweep / job), "cwd": str(sweep)}},
    })


def test_callback_records_failed_job_and_rebuilds_report(sweep: Path) -> None:
    callback = SweepReport()
    failed = JobReturn(overrides=["arch=resnet32", *COMMON], status=JobStatus.FAILED)
    failed._return_value = RuntimeError("CUDA out of memory\nmore detail")
    callback.on_job_end(job_config(sweep, "7-resnet32"), failed)
    status = json.loads((sweep / "7-resnet32" / "job_status.json").read_text())
    assert status["status"] == "failed" and status["error"] == "RuntimeError: CUDA out of memory"
    rows = read_csv(sweep / "summary.csv")
    assert rows[-1]["job"] == "7-resnet32" and rows[-1]["status"] == "failed"
    assert rows[-1]["overrides"].split()[0] == "arch=resnet32"
    callback.on_multirun_end(job_config(sweep, ""))  # wandb disabled: only the files
    assert (sweep / "step_time_vs_depth.png").is_file()


def test_callback_ignores_single_runs_and_bench_sweeps(tmp_path: Path) -> None:
    callback = SweepReport()
    done = JobReturn(overrides=[], status=JobStatus.COMPLETED)
    callback.on_job_end(job_config(tmp_path, "run", mode=RunMode.RUN), done)
    bench = job_config(tmp_path, "0")
    bench.bench = {"batch_size": 2}
    callback.on_job_end(bench, done)
    callback.on_multirun_end(bench)
    assert list(tmp_path.iterdir()) == []
    # A sweep folder the report cannot read is a warning, never an exception that stops the sweep.
    callback.on_multirun_end(job_config(tmp_path / "nothing_here", ""))


def test_report_reads_depth_and_block_order_from_the_zoo():
    """The report's depth/order of every named arch equal the built spec's."""
    from resnet_exp.models import list_models, resolve
    from resnet_exp.report.rows import block_order_of, depth_of

    for name in list_models():
        if name != "custom":
            spec = resolve(name)
            assert (depth_of({}, name), block_order_of({}, name)) == (spec.depth, spec.block_order.value)
    spec = resolve("resnet50", blocks=[1, 2, 1, 1])
    assert depth_of({"blocks": [1, 2, 1, 1]}, "resnet50") == spec.depth



def test_hand_edited_results_give_one_warning_per_job_and_the_rest_of_the_report(
        sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Ill-typed values, a file cut short and a metrics.csv with a ragged row: each bad job is one
    warning line, its bad values are left out, every other value and job is reported."""
    import json

    jobs = sorted(p for p in sweep.iterdir() if (p / "results.json").is_file())
    typed = json.loads((jobs[0] / "results.json").read_text())
    typed.update({"status": "completed", "arch": ["resnet20"], "block_order": {"a": 1}, "depth": "deep",
                  "params": True})
    (jobs[0] / "results.json").write_text(json.dumps(typed))
    cut = (jobs[1] / "results.json").read_text()
    (jobs[1] / "results.json").write_text(cut[: len(cut) // 2])
    assert main([str(sweep)]) == 0
    out, err = capsys.readouterr()
    warnings = err.strip().splitlines()
    assert len(warnings) == 2 and all(w.startswith("warning: ") for w in warnings), err
    assert "arch is [\"resnet20\"], not str" in warnings[0] and "depth is \"deep\", not int" in warnings[0]
    assert "cannot parse" in warnings[1]
    assert f"| {jobs[0].name} | {typed['status']} |" in out  # the rest of its row is still there

    run = jobs[0]
    (run / "csv").mkdir(exist_ok=True)
    (run / "csv" / "metrics.csv").write_text("epoch,step,val/acc\n0,9,0.5\n1,19,0.6,7,8,9\n")  # a ragged row
    assert main([str(run)]) == 0
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "left out" in err and "Traceback" not in err
    assert "curves.png" in out
