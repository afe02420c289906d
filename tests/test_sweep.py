"""Multirun: one folder and one finished wandb run per job, one group, and a summary.

Sweeps run in-process (the basic launcher runs its jobs in one process anyway, which is what the
wandb and report callbacks must cope with); the submitit launcher starts real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from tests.helpers.cli import TINY_RUN, explain, run_in_process, run_train, train_in_process

WANDB = str(Path(sys.executable).with_name("wandb"))
SWEEP = [*TINY_RUN, "trainer.max_epochs=1"]


def wandb_records(run: Path) -> list[dict]:
    out = subprocess.run([WANDB, "leet", "inspect", "--json", str(run)], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def wandb_summary(run: Path) -> dict:
    out = subprocess.run([WANDB, "leet", "inspect", "--summary", "--json", str(run)],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return json.loads(out)


@pytest.mark.slow
def test_two_by_two_sweep(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = train_in_process("-m", *SWEEP, "logger.wandb.mode=offline", "arch=resnet20,resnet56",
                            "arch.block_order=post,pre", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["0-resnet20-post", "1-resnet20-pre", "2-resnet56-post", "3-resnet56-pre"]

    groups = set()
    for job in jobs:
        results = json.loads((sweep / job / "results.json").read_text())
        assert (results["arch"], results["block_order"]) == tuple(job.split("-")[1:])
        (run,) = (sweep / job / "wandb").glob("offline-run-*")
        summary = wandb_summary(run)
        assert (summary["state"], summary["exit_code"], summary["name"]) == ("finished", 0, job[2:])
        assert f"arch={results['arch']}" in summary["tags"]
        assert summary["config"]["arch"]["depth"] == results["depth"] in (20, 56)
        assert summary["summary"]["step_time/median_ms"] == results["step_time"]["median_ms"]
        groups |= {r["run"].get("run_group") for r in wandb_records(run) if r["type"] == "run"}
    assert groups == {f"run-{sweep.name}"}

    rows = (sweep / "summary.csv").read_text().splitlines()
    assert len(rows) == 5 and "completed" in rows[1]
    assert (sweep / "summary.md").is_file()
    assert (sweep / "accuracy_vs_depth.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_failed_job_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    # val_check_interval=1000 passes the schema but Lightning rejects it once fitting starts.
    proc = train_in_process("-m", *SWEEP, "logger.wandb.mode=offline", "trainer.val_check_interval=1000,1",
                            f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode != 0, explain(proc)
    assert not (sweep / "0-1000" / "results.json").exists()
    assert json.loads((sweep / "1-1" / "results.json").read_text())["status"] == "completed"
    (failed_run,) = (sweep / "0-1000" / "wandb").glob("offline-run-*")
    assert wandb_summary(failed_run)["exit_code"] == 1
    summary = (sweep / "summary.csv").read_text()
    assert "failed" in summary and "completed" in summary


def test_fail_fast_stops_the_sweep_at_the_first_failure(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = train_in_process("-m", *SWEEP, "trainer.val_check_interval=1000,1",
                            "hydra.sweeper.max_batch_size=1", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode != 0, explain(proc)
    assert not (sweep / "1-1").exists()


def test_bad_value_anywhere_in_a_sweep_fails_before_any_job(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = train_in_process("-m", *SWEEP, "optimizer.lr=0.1,-1", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert proc.stderr.strip().splitlines()[-1] == "error: optimizer.lr=-1.0: must be > 0"
    assert not sweep.exists()


@pytest.mark.slow
def test_submitit_local_launcher_runs_each_job_in_its_own_process(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_train("-m", "hydra/launcher=local", *SWEEP, "arch.block_order=post,pre", "hydra.launcher.cpus_per_task=1",
                     f"hydra.sweep.dir={sweep}", cwd=tmp_path, OMP_NUM_THREADS="2")
    assert proc.returncode == 0, explain(proc)
    assert (sweep / ".submitit").is_dir()
    for job in ("0-post", "1-pre"):
        results = json.loads((sweep / job / "results.json").read_text())
        assert (results["status"], results["cpu_threads"]) == ("completed", 1)


def test_a_launched_job_runs_torch_on_at_most_cpus_per_task_threads(compose_config) -> None:
    def start_job(*overrides: str) -> int:
        cfg = compose_config(*overrides)
        instantiate(cfg.hydra.callbacks.cpu_threads_per_job).on_job_start(cfg, task_function=None)
        return torch.get_num_threads()

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert start_job("hydra/launcher=local", "hydra.launcher.cpus_per_task=1") == 1
        assert start_job("hydra/launcher=local", "hydra.launcher.cpus_per_task=4") == 1  # lowered only
        torch.set_num_threads(2)
        assert start_job() == 2  # Hydra's own launcher, in this process: the process's setting
    finally:
        torch.set_num_threads(threads)


def test_slurm_launcher_defaults_follow_the_trainer(compose_config) -> None:
    cfg = compose_config("hydra/launcher=slurm", "trainer.devices=4", "trainer.num_nodes=2",
                         "hydra.launcher.partition=gpu")
    launcher = cfg.hydra.launcher  # (submitit_folder needs a running job to resolve)
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
    assert launcher.partition == "gpu"


def test_sweep_as_typed_lands_under_outputs_of_the_working_directory(tmp_path: Path) -> None:
    """No hydra.sweep.dir on the command line: the sweep folder is resolved before any job exists,
    so it must not need a job's Hydra runtime (the paths config once did, and every README sweep
    failed). Both entry points with a sweep: training and bench."""
    proc = train_in_process("-m", *SWEEP, "arch.block_order=post,pre", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    (sweep,) = (tmp_path / "outputs" / "train" / "multiruns").iterdir()
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0-post", "1-pre"]
    assert "completed" in (sweep / "summary.md").read_text()
    assert str(sweep / "summary.md") in proc.stdout

    proc = run_in_process("resnet_exp.bench", "-m", "arch=resnet20,resnet32", "arch.width=0.25",
                          "bench.batch_size=2", "bench.image_size=16", "bench.batches=1", "bench.burn_in=0",
                          "bench.mode=[forward]", "bench.num_classes=10", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    (bench_sweep,) = (tmp_path / "outputs" / "bench" / "multiruns").iterdir()
    assert (bench_sweep / "bench.csv").read_text().count("\n") == 3  # header + one row per job


@pytest.mark.slow
def test_seed_sweep_reports_groups_and_shares_a_wandb_group_per_configuration(tmp_path: Path) -> None:
    """The jobs that differ only in seed: one wandb group per configuration (the sweep kept as a
    tag), one row of groups.csv, compared pairwise by seed in comparisons.csv and summary.md."""
    sweep = tmp_path / "sweep"
    proc = train_in_process("-m", *SWEEP, "logger.wandb.mode=offline", "arch.block_order=post,pre", "seed=1,2",
                            f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["0-post-1", "1-post-2", "2-pre-1", "3-pre-2"]
    for job in jobs:
        (run,) = (sweep / job / "wandb").glob("offline-run-*")
        (record,) = [r["run"] for r in wandb_records(run) if r["type"] == "run"]
        assert record["run_group"] == f"run-{sweep.name}-{job.split('-')[1]}", job
        assert f"sweep=run-{sweep.name}" in record["tags"]

    groups = (sweep / "groups.csv").read_text().splitlines()
    assert groups[0].startswith("arch.block_order,n,test/acc_mean,test/acc_sd,test/acc_ci_low,test/acc_ci_high,")
    assert [g.split(",")[:2] for g in groups[1:]] == [["post", "2"], ["pre", "2"]]
    assert all(g.endswith(",1 2,0") for g in groups[1:])  # seeds, none left out
    comparisons = (sweep / "comparisons.csv").read_text().splitlines()
    test_acc = next(c.split(",") for c in comparisons if ",test/acc," in c)
    assert test_acc[:7] == ["arch.block_order", "post", "pre", "", "test/acc", "2", "true"]
    summary = (sweep / "summary.md").read_text()
    assert "## Groups" in summary and "| post − pre |" in summary and "paired over 2 seeds" in summary
    assert "## Comparisons" in proc.stdout  # printed at the end of the sweep
