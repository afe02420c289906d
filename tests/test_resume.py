"""Resume: an interrupted run continued in its own folder ends as if it had never stopped.

All runs in-process (the entry point with its argument expansion); the process boundary is
tested in test_run_errors and test_run_cli."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from tests.helpers.cli import TINY_RUN, explain, run_in_process, run_train, train_in_process
from tests.test_wandb import inspect

# Deterministic end to end with the default (torch DataLoader) loader: the order and augmentation
# of every batch are functions of (seed, epoch, batch), deterministic kernels, and a schedule that
# does not depend on max_epochs.
DETERMINISTIC = [*TINY_RUN, "scheduler=none", "trainer.deterministic=true", "logger.wandb.mode=offline"]
# What may differ between an interrupted+resumed run and an uninterrupted one: timings and the
# command line (time_to_accuracy is compared without its clock).
TIMING_AND_PATHS = ("wall_time_s", "step_time", "throughput", "overrides")


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def comparable(run_dir: Path) -> dict:
    found = {k: v for k, v in results(run_dir).items() if k not in TIMING_AND_PATHS}
    found["time_to_accuracy"] = [{k: v for k, v in point.items() if k != "train_time_s"}
                                 for point in found.get("time_to_accuracy") or []]
    return found


@pytest.mark.slow
def test_resumed_run_matches_uninterrupted_run(tmp_path: Path) -> None:
    whole, part = tmp_path / "whole", tmp_path / "part"
    proc = train_in_process(*DETERMINISTIC, "trainer.max_epochs=2", f"hydra.run.dir={whole}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    proc = train_in_process(*DETERMINISTIC, "trainer.max_epochs=1", f"hydra.run.dir={part}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert results(part)["epochs"] == 1

    proc = train_in_process(f"resume={part}", "trainer.max_epochs=2", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    expected, resumed = results(whole), results(part)
    assert comparable(part) == comparable(whole)
    assert resumed["epochs"] == 2 and "val/acc_best" in resumed
    # Same folder, same wandb run (two offline segments with one id).
    ids = {p.name.rsplit("-", 1)[1] for p in (part / "wandb").glob("offline-run-*")}
    assert len(list((part / "wandb").glob("offline-run-*"))) == 2 and len(ids) == 1
    assert "trainer.max_epochs=2" in results(part)["overrides"]
    # The step timer continued too: its CSV and statistics cover both epochs, each step once.
    rows = (part / "step_times.csv").read_text().splitlines()[1:]
    assert sorted(int(r.split(",")[1]) for r in rows) == list(range(expected["steps"]))
    assert [e["epoch"] for e in resumed["step_time"]["per_epoch"]] == [0, 1]


@pytest.mark.parametrize("loader", ["torch", "gpu"])  # gpu: the device-resident loader, here on CPU tensors
def test_run_killed_mid_epoch_resumes_exactly(tmp_path: Path, loader: str) -> None:
    """6 steps an epoch; last.ckpt every 4 steps; killed (SIGKILL) after step 10, i.e. in the
    second epoch, 2 steps past its last checkpoint; resumed from there. Only the killed run needs
    a process of its own."""
    args = [*DETERMINISTIC, f"data.loader={loader}", "logger.wandb.mode=disabled",
            "+callbacks.killer._target_=tests.helpers.kill_at_step.KillAtStep",
            "+callbacks.last_checkpoint.every_n_train_steps=4"]
    whole, part = tmp_path / "whole", tmp_path / "part"
    proc = train_in_process(*args, f"hydra.run.dir={whole}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    proc = run_train(*args, f"hydra.run.dir={part}", cwd=tmp_path, KILL_AT_STEP="10")
    assert proc.returncode == -9, explain(proc)
    assert not (part / "results.json").exists()

    proc = train_in_process(f"resume={part}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert comparable(part) == comparable(whole)


def test_resume_from_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    proc = train_in_process(f"resume={tmp_path}", cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert proc.stderr.strip().splitlines() == [
        f"error: resume={tmp_path}: not a run folder (no .hydra/overrides.yaml there); "
        "pass a folder under outputs/<task>/runs/"]


def test_checkpoint_of_another_arch_is_refused(tmp_path: Path) -> None:
    first = tmp_path / "first"
    proc = train_in_process(*TINY_RUN, "trainer.max_epochs=1", f"hydra.run.dir={first}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    ckpt = first / "checkpoints" / "last.ckpt"
    proc = train_in_process(f"ckpt_path={ckpt}", "arch=resnet20", cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: ckpt_path={ckpt}: does not fit arch=resnet20")


def test_a_moved_or_copied_run_resumes_and_tests_its_own_checkpoints(tmp_path: Path) -> None:
    """Trained, then copied and moved, the original deleted: each folder resumes with its own files.
    The moved one validates nothing in its new epoch, so its best checkpoint is the one it brought."""
    original = tmp_path / "original"
    proc = train_in_process(*TINY_RUN, "trainer.max_epochs=1", f"hydra.run.dir={original}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    copied, moved = tmp_path / "copied", tmp_path / "elsewhere" / "moved"
    shutil.copytree(original, copied)
    moved.parent.mkdir()
    shutil.move(original, moved)
    for run, extra in ((moved, ["trainer.check_val_every_n_epoch=3"]), (copied, [])):
        proc = train_in_process(f"resume={run}", "trainer.max_epochs=2", *extra, cwd=tmp_path)
        assert proc.returncode == 0, explain(proc)
        resumed = results(run)
        best = (run / resumed["best_checkpoint"]).resolve()
        assert best.parent == run / "checkpoints" and best.is_file(), resumed["best_checkpoint"]
        evaluated_dir = tmp_path / f"eval-{run.name}"
        proc = run_in_process("resnet_exp.eval", f"ckpt_path={best}", f"hydra.run.dir={evaluated_dir}", cwd=tmp_path)
        assert proc.returncode == 0, explain(proc)
        evaluated = results(evaluated_dir)
        assert (evaluated["test/acc"], evaluated["test/loss"]) == (resumed["test/acc"], resumed["test/loss"])
    assert results(moved)["best_checkpoint"] == "checkpoints/best-epoch001.ckpt"
    assert not original.exists()


def test_a_killed_and_resumed_run_counts_all_its_time_and_syncs_with_one_command(tmp_path: Path) -> None:
    """Killed (SIGKILL) in its second epoch, resumed: wall_time_s covers both segments, and the
    summary's one `wandb sync` line names both offline folders of the run, oldest first."""
    run = tmp_path / "run"
    proc = run_train(*TINY_RUN, "logger.wandb.mode=offline", "+callbacks.killer._target_=tests.helpers.kill_at_step.KillAtStep",
                     f"hydra.run.dir={run}", cwd=tmp_path, KILL_AT_STEP="8")
    assert proc.returncode == -9, explain(proc)
    carried = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["run_wall_time_s"]
    assert carried > 0
    proc = train_in_process(f"resume={run}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    resumed = results(run)
    assert resumed["wall_time_s"] > carried
    assert resumed["wall_time_s"] >= resumed["time_to_accuracy"][-1]["train_time_s"]
    killed, last = sorted((run / "wandb").glob("offline-run-*"))
    assert killed.name.rsplit("-", 1)[1] == last.name.rsplit("-", 1)[1]  # one wandb run, two segments
    shown = " ".join(os.path.relpath(p, tmp_path) for p in (killed, last))
    assert f"wandb (offline)   wandb sync {shown}" in proc.stdout.splitlines()
    states = [json.loads(inspect(p, "--summary")) for p in (killed, last)]
    assert states[0]["exit_code"] is None and states[0]["state"] != "finished"  # what wandb keeps of a kill
    assert (states[1]["state"], states[1]["exit_code"]) == ("finished", 0)


def test_init_weights_starts_a_new_run_from_the_weights_alone(tmp_path: Path, run_config) -> None:
    first = tmp_path / "first"
    proc = train_in_process(*TINY_RUN, "trainer.max_epochs=1", f"hydra.run.dir={first}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    best = first / results(first)["best_checkpoint"]
    # Another optimizer and schedule (which a resume refuses), and a run of its own length from step 0.
    second = tmp_path / "second"
    proc = train_in_process(*TINY_RUN, f"init_weights={best}", "optimizer=adam", "scheduler=onecycle",
                            "trainer.max_epochs=1", f"hydra.run.dir={second}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    started = results(second)
    assert (started["epochs"], started["steps"], started["optimizer"], started["scheduler"]) == (1, 6, "adam", "onecycle")
    assert any(o.startswith("init_weights=") and str(best) in o for o in started["overrides"])
    # The model such a run starts from holds exactly the checkpoint's weights.
    from resnet_exp.pipeline import build_parts

    parts = build_parts(run_config(*TINY_RUN, f"init_weights={best}"))
    saved = torch.load(best, weights_only=True)["state_dict"]
    state = parts.module.state_dict()
    assert set(state) == set(saved) and all(torch.equal(state[k], v) for k, v in saved.items())
