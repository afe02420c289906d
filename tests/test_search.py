"""`python -m resnet_exp.run -m hparams_search=lr_wd ...`: an Optuna study run by Hydra, as a user
sees it: the sweep folder (job folders named by trial, summary.md, optimization_results.yaml, the
sqlite study), a study shared by two processes and extended by a rerun, pruning, a trial left
behind by a dead process, and one-line errors for a bad search config.

Searches run in this process (the basic launcher runs jobs in the sweeper's process anyway),
except the two processes sharing one study, which is what that test is about."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from resnet_exp.app.signals import TERMINATED_EXIT_CODE
from resnet_exp.search import STUDY_DB
from tests.helpers.cli import REPO_ROOT, TINY_TRAINING, cli_env, explain, run_train, train_in_process
from tests.test_sigterm import KILLER

# A few tiny trials: 64 training images of 16 px, one epoch.
SEARCH = ["hparams_search=lr_wd", "data=synthetic", "data.image_size=16", "data.train_size=64",
          "data.val_size=32", "data.test_size=32", *TINY_TRAINING, "trainer.max_epochs=1"]
WANDB = str(Path(sys.executable).with_name("wandb"))


def load_study(storage: str, name: str | None = None) -> optuna.Study:
    name = name or optuna.get_all_study_names(storage)[0]
    return optuna.load_study(study_name=name, storage=storage)


def job_folders(sweep: Path) -> list[str]:
    return sorted((p.name for p in sweep.iterdir() if p.is_dir()), key=lambda n: int(n.split("-")[0]))


@pytest.mark.slow
def test_search_leaves_a_study_a_summary_and_folders_named_by_trial(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = train_in_process("-m", *SEARCH, "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)

    study = load_study(f"sqlite:///{sweep}/optuna.db")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    names = []
    for trial in study.trials:
        lr, wd = trial.params["optimizer.lr"], trial.params["optimizer.weight_decay"]
        assert 1e-4 <= lr <= 1.0 and 1e-6 <= wd <= 1e-2
        name = f"{trial.number}-{lr:.3g}-{wd:.3g}-{trial.params['arch.block_order']}"
        results = json.loads((sweep / name / "results.json").read_text())
        assert (results["status"], results["trial"]) == ("completed", trial.number)
        assert results["val/acc_best"] == pytest.approx(trial.value)  # the job's return value
        assert f"optimizer.lr={lr!r}" in results["overrides"]  # the job got the exact value
        names.append(name)
    assert job_folders(sweep) == names
    assert re.fullmatch(r"0-[0-9.e-]{3,9}-[0-9.e-]{3,9}-(post|pre)", names[0])  # short floats

    best = study.best_trial
    assert yaml.safe_load((sweep / "optimization_results.yaml").read_text()) == {
        "name": "optuna", "study_name": "sweep", "storage": f"sqlite:///{sweep}/optuna.db",
        "direction": "maximize", "best_trial": best.number, "best_params": best.params,
        "best_value": best.value}
    summary = (sweep / "summary.md").read_text()
    assert f"Best: trial {best.number}, val/acc_best" in summary
    for trial, name in zip(study.trials, names):
        row = next(line for line in summary.splitlines() if line.startswith(f"| {trial.number} |"))
        assert row.endswith(f"| complete | {name} |") and f"{trial.params['optimizer.lr']:.3g}" in row
    assert "3 jobs: 3 completed" in summary and "sweep summary" in proc.stdout


def _search_process(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "resnet_exp.run", "-m", *SEARCH, *args], cwd=tmp_path,
                            env=cli_env(PYTHONPATH=str(REPO_ROOT)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_two_processes_share_one_study_and_a_rerun_adds_trials(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path}/study.db"
    shared = [f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=lr_wd_tiny"]
    procs = [_search_process(tmp_path, *shared, "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={tmp_path}/{name}")
             for name in ("first", "second")]
    for proc in procs:
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output[-4000:]
    numbers = {name: [int(job.split("-")[0]) for job in job_folders(tmp_path / name)] for name in ("first", "second")}
    assert len(numbers["first"]) == len(numbers["second"]) == 2
    assert sorted(numbers["first"] + numbers["second"]) == [0, 1, 2, 3]  # each process its own trials
    study = load_study(storage, "lr_wd_tiny")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4

    # The same command again adds n_trials to the study, with parameters not tried before.
    proc = train_in_process("-m", *SEARCH, *shared, "hydra.sweeper.n_trials=1", f"hydra.sweep.dir={tmp_path}/rerun",
                            cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    trials = load_study(storage, "lr_wd_tiny").trials
    assert len(trials) == 5 and trials[4].state == TrialState.COMPLETE
    assert trials[4].params not in [t.params for t in trials[:4]]
    assert job_folders(tmp_path / "rerun")[0].startswith("4-")
    summary = (tmp_path / "rerun" / "summary.md").read_text()
    assert "5 trials: 5 complete" in summary and f"| {tmp_path}/first/" in summary


@pytest.mark.slow
def test_a_pruned_trial_stops_early_and_says_so(tmp_path: Path) -> None:
    """A pruner that prunes every trial after its first epoch (val/acc is never above 1.1)."""
    sweep = tmp_path / "sweep"
    proc = train_in_process("-m", *SEARCH, "trainer.max_epochs=2", "hydra.sweeper.n_trials=1",
                            "hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,lower:1.1}",
                            "logger.wandb.mode=offline", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    (job,) = job_folders(sweep)
    results = json.loads((sweep / job / "results.json").read_text())
    assert (results["status"], results["epochs"], results["pruned_at_epoch"]) == ("pruned", 1, 1)
    assert "test/acc" not in results  # not tested
    (trial,) = load_study(f"sqlite:///{sweep}/optuna.db").trials
    assert trial.state == TrialState.PRUNED and list(trial.intermediate_values) == [0]
    summary = (sweep / "summary.md").read_text()
    assert f"| pruned (epoch 1) | {job} |" in summary and "1 jobs: 1 pruned" in summary
    assert "search trial      0: pruned after epoch 1, not tested" in proc.stdout
    (run,) = (sweep / job / "wandb").glob("offline-run-*")
    shown = json.loads(subprocess.run([WANDB, "leet", "inspect", "--summary", "--json", str(run)],
                                      capture_output=True, text=True, timeout=120, check=True).stdout)
    assert shown["summary"]["trial/state"] == "pruned" and "pruned" in shown["tags"]
    assert shown["config"]["trial"] == 0


def test_a_trial_left_running_by_a_dead_process_is_retried(tmp_path: Path) -> None:
    """Heartbeats: a RUNNING trial whose process stopped beating is failed, and the next search
    process runs its parameters again."""
    storage = f"sqlite:///{tmp_path}/study.db"
    beats = optuna.storages.RDBStorage(storage, heartbeat_interval=1, grace_period=1)
    dead = optuna.create_study(storage=beats, study_name="s", direction="maximize")
    with pytest.warns(UserWarning):  # Optuna: heartbeats are meant for study.optimize
        trial = dead.ask({"optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True),
                          "optimizer.weight_decay": optuna.distributions.FloatDistribution(1e-6, 1e-2, log=True),
                          "arch.block_order": optuna.distributions.CategoricalDistribution(["post", "pre"])})
    beats.record_heartbeat(beats.get_trial_id_from_study_id_trial_number(beats.get_study_id_from_name("s"), 0))
    time.sleep(2.5)  # past the grace period: the process that ran trial 0 is gone
    proc = train_in_process("-m", *SEARCH, f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=s",
                            "hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=1",
                            "hydra.sweeper.n_trials=1", f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    first, retry = load_study(storage, "s").trials
    assert (first.state, retry.state) == (TrialState.FAIL, TrialState.COMPLETE)
    assert retry.params == trial.params


@pytest.mark.slow
def test_a_search_stopped_by_sigterm_resumes_and_runs_the_stopped_trial_again(tmp_path: Path) -> None:
    """SIGTERM in trial 0: the search exits 143 with trial 0 failed and its parameters queued; the printed
    `-m resume=` runs them again as a new trial and finishes the search's n_trials."""
    sweep, storage = tmp_path / "sweep", f"sqlite:///{tmp_path}/sweep/{STUDY_DB}"
    proc = run_train("-m", *SEARCH, KILLER, "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep}", cwd=tmp_path,
                     KILL_AT_STEP="1", KILL_SIGNAL="SIGTERM")
    assert proc.returncode == TERMINATED_EXIT_CODE, explain(proc)
    assert f"resume the sweep with: python -m resnet_exp.run -m resume={sweep}" in proc.stderr
    stopped, queued = load_study(storage).trials
    assert (stopped.state, queued.state, queued.params) == (TrialState.FAIL, TrialState.WAITING, stopped.params)

    proc = train_in_process("-m", f"resume={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    trials = load_study(storage).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[1].params == stopped.params


@pytest.mark.parametrize(("args", "message"), [
    (["hparams_search=lr_wd", "hydra.sweeper.pruner=medain"],  # no -m: a search is a sweep anyway
     "error: hydra.sweeper.pruner=medain: no such pruner; choose one of median, hyperband, none, or "
     "{_target_: optuna.pruners.NAME, ...}"),
    (["-m", "hparams_search=lr_wd", "optimizer.lr=interval(0.1,0.001)"],
     "error: optimizer.lr=interval(0.1,0.001): the low end is above the high end; write interval(low, high)"),
    (["-m", "hparams_search=lr_wd", "arch.block_order=post,sideways"],  # a choice is checked before any trial
     "error: arch.block_order: Invalid value 'sideways', expected one of [post, bn_after_add, relu_before_add, "
     "relu_only_pre, pre, relu_before_and_after_add]"),
    (["-m", "optimizer.lr=interval(0.01,0.1)"],  # no search chosen: Hydra's basic sweeper
     "error: optimizer.lr=interval(0.01,0.1): Hydra's basic sweeper runs lists, choice() and range(); "
     "interval() and tag() need a search: add hparams_search=lr_wd (or hydra/sweeper=optuna)"),
    (["-m", "hparams_search=lr_wd", "hydra.sweeper.storage=sqlite:///s.db"],
     "error: hydra.sweeper.study_name=null: a shared storage needs a study name; set hydra.sweeper.study_name=NAME"),
])
def test_a_bad_search_config_is_one_line_before_anything_starts(tmp_path: Path, args: list[str], message: str) -> None:
    sweep = tmp_path / "sweep"
    flags, overrides = [a for a in args if a == "-m"], [a for a in args if a != "-m"]
    proc = train_in_process(*flags, *SEARCH[1:], *overrides, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert proc.stderr.strip().splitlines()[-1] == message
    assert not sweep.exists()
