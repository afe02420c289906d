"""Failures that tell the truth: a diverged run, nothing to train, unreadable results."""

from __future__ import annotations

import json
import math
from pathlib import Path

from resnet_exp.io import write_json_atomic
from tests.helpers.cli import TINY_RUN, explain, run_in_process, train_in_process


def strict_load(path: Path) -> dict:
    def refuse(name: str) -> None:
        raise AssertionError(f"{path}: {name} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_a_diverging_run_stops_says_so_and_writes_strict_json(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    run_dir = sweep / "0"
    proc = train_in_process(*TINY_RUN, "optimizer.lr=1e30", "trainer.log_every_n_steps=2", "trainer.max_epochs=3",
                            f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode != 0, explain(proc)
    # One error line, the last (library warnings printed during training may precede it).
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.stderr.strip().splitlines()[-1] == line
    assert line.startswith("error: training diverged: loss is nan by step "), line
    assert "at learning rate 1e+30" in line
    results = strict_load(run_dir / "results.json")
    assert results["status"] == "diverged"
    # Checked on logging steps only: stopped at the first one after the loss went bad.
    assert results["diverged_at_step"] < 2 and results["steps"] <= 2
    assert "test/acc" not in results
    for key in results.get("non_finite", []):
        assert results[key] is None

    proc = run_in_process("resnet_exp.report", str(sweep), "--no-plots", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    summary = (sweep / "summary.csv").read_text().splitlines()
    assert summary[1].split(",")[1] == "diverged"


def test_nothing_to_train_is_refused(tmp_path: Path) -> None:
    proc = train_in_process(*TINY_RUN, "trainer.max_epochs=0", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert proc.stderr.strip().splitlines() == [
        "error: trainer.max_epochs=0: must be >= 1, or -1 for no limit (0 would train nothing)"]
    assert not (tmp_path / "run" / "results.json").exists()


def test_non_finite_numbers_are_written_as_null_and_named(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_json_atomic(path, {"val/loss": math.nan, "nested": {"x": [1.0, math.inf]}, "status": "completed"})
    assert strict_load(path) == {"val/loss": None, "nested": {"x": [1.0, None]}, "status": "completed",
                                 "non_finite": ["nested.x[1]", "val/loss"]}


def test_report_warns_about_an_unreadable_results_file(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    job = sweep / "0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- data=synthetic\n")
    (job / "results.json").write_text('{"status": "completed", "val/loss": NaN}\n')
    proc = run_in_process("resnet_exp.report", str(sweep), "--no-plots", "-q", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert f"warning: {job}: results.json: cannot parse: NaN is not JSON" in proc.stderr
    row = (sweep / "summary.csv").read_text().splitlines()[1].split(",")
    assert row[1] == "unreadable"


def test_diverged_lr_is_the_rate_of_the_step_that_diverged(tmp_path: Path) -> None:
    """Found at the end of the only epoch (no logging step in 6 steps), after the cosine schedule
    stepped the rate down to 0: the report names the rate the bad step ran at."""
    run_dir = tmp_path / "run"
    proc = train_in_process(*TINY_RUN, "optimizer.lr=1e30", "trainer.max_epochs=1", f"hydra.run.dir={run_dir}",
                            cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert "at learning rate 1e+30;" in line, line
    results = strict_load(run_dir / "results.json")
    assert results["status"] == "diverged" and results["diverged_lr"] == 1e30
    assert results["diverged_at_step"] < results["steps"] == 6
