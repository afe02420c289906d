"""The Hydra Sweeper of a search (`hydra/sweeper=optuna`) and the files it leaves. Each round it asks Optuna for
`n_jobs` trials, launches them (job number = trial number, `++hydra.sweeper.trial`) and tells Optuna how each ended."""

from __future__ import annotations

import logging
import math
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from resnet_exp.app.arguments import hydra_quoted
from resnet_exp.app.signals import TERMINATED_EXIT_CODE
from resnet_exp.errors import TrainingDiverged, UserError, first_line, require
from resnet_exp.io import write_atomic, write_json_atomic
from resnet_exp.search import OPTIMIZATION_RESULTS, PRUNED_AT_EPOCH, RUN_DIR, STUDY_DB, STUDY_FILE
from resnet_exp.search.space import SearchSpace, search_space
from resnet_exp.search.study import (
    SQLITE,
    absolute_url,
    make_pruner,
    make_sampler,
    make_storage,
    plain,
    retry_once,
    shown_url,
)

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)


def consecutive(numbers: Sequence[int]) -> list[list[int]]:
    """`numbers` cut into runs of consecutive numbers ([3, 4, 6] -> [[3, 4], [6]])."""
    return [[n for _, n in run] for _, run in groupby(enumerate(numbers), lambda pair: pair[1] - pair[0])]


class OptunaSearch(Sweeper):
    """Runs an Optuna study: the keys of Hydra's Optuna sweeper plugin, plus `pruner`, `monitor` and heartbeats."""

    def __init__(self, n_trials: int = 20, direction: str = "maximize", storage: str | None = None,
                 study_name: str | None = None, sampler: Mapping[str, Any] | None = None,
                 pruner: Any = "median", monitor: str = "val/acc", params: Mapping[str, str] | None = None,
                 n_jobs: int = 1, max_failure_rate: float = 0.0, heartbeat_interval: int | None = 60,
                 grace_period: int | None = None, trial: int | None = None) -> None:
        # Each job reads `monitor` and `trial` from its own config; `trial` is set only there.
        at = "hydra.sweeper."
        require(isinstance(n_trials, int) and n_trials >= 1, at + "n_trials", n_trials, "must be a whole number >= 1")
        require(isinstance(n_jobs, int) and n_jobs >= 1, at + "n_jobs", n_jobs, "must be a whole number >= 1")
        require(direction in ("maximize", "minimize"), at + "direction", direction, "must be one of maximize, minimize")
        require(0.0 <= float(max_failure_rate) <= 1.0, at + "max_failure_rate", max_failure_rate, "must be in [0, 1]")
        require(heartbeat_interval is None or int(heartbeat_interval) >= 1, at + "heartbeat_interval",
                heartbeat_interval, "must be null (no heartbeats) or a number of seconds >= 1")
        require(not storage or bool(study_name), at + "study_name", "null",
                "a shared storage needs a study name; set hydra.sweeper.study_name=NAME")
        self.n_trials, self.n_jobs, self.direction = n_trials, n_jobs, direction
        self.storage, self.study_name, self.params = storage, study_name, dict(params or {})
        self.sampler_spec = plain(sampler)
        self.pruner = make_pruner(plain(pruner))  # a bad pruner or sampler fails before anything starts
        make_sampler(self.sampler_spec, 0)
        self.max_failure_rate = float(max_failure_rate)
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.config: DictConfig | None = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def _ask(self, study: optuna.Study, space: SearchSpace) -> optuna.trial.Trial:
        """A new trial (or one waiting to be retried), its sampler seeded by its trial number."""
        from optuna.distributions import CategoricalDistribution, IntDistribution

        expected = len(study.get_trials(deepcopy=False))
        study.sampler = make_sampler(self.sampler_spec, expected)
        with warnings.catch_warnings():  # ask-and-tell with heartbeats: this sweeper records them itself
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
            trial = study.ask()
        if trial.number != expected:  # another process took that number first
            study.sampler = make_sampler(self.sampler_spec, trial.number)
        for name, dist in space.distributions.items():  # the three kinds that `search.space` makes
            if isinstance(dist, CategoricalDistribution):
                trial.suggest_categorical(name, dist.choices)
            else:
                suggest = trial.suggest_int if isinstance(dist, IntDistribution) else trial.suggest_float
                suggest(name, dist.low, dist.high, step=dist.step, log=dist.log)
        return trial

    def _tell(self, study: optuna.Study, trial: optuna.trial.Trial, ret: JobReturn) -> str:
        """Tell Optuna how the job of `trial` ended; returns the state's name."""
        from optuna.trial import TrialState

        run_dir = OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir", default=None) if ret.hydra_cfg else None
        if run_dir:
            trial.set_user_attr(RUN_DIR, str(run_dir))
        error = job_error(ret)
        if error is None and any(t.number == trial.number and PRUNED_AT_EPOCH in t.user_attrs  # set by the job
                                 for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))):
            study.tell(trial.number, state=TrialState.PRUNED)
            return "pruned"
        value = None if error else ret.return_value
        if error is None and isinstance(value, (int, float)) and math.isfinite(value):
            study.tell(trial.number, float(value))
            return "complete"
        trial.set_user_attr("error", first_line(error)[:300] if error else (
            f"optimized_metric is {value!r} in the job's results.json, not a number (did the run validate? "
            "val/acc_best needs at least one validation)"))
        study.tell(trial.number, state=TrialState.FAIL)
        return "diverged" if isinstance(error, TrainingDiverged) else "failed"

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        import optuna
        from optuna.trial import TrialState
        from sqlalchemy.engine import make_url

        assert self.config is not None and self.launcher is not None
        space = search_space(self.params, arguments)
        if not space.distributions:
            raise UserError("hydra.sweeper.params: nothing to search; give at least one key a range, e.g. "
                            "optimizer.lr='tag(log, interval(1e-4, 1))', or a choice (a,b)")
        launch_dir = Path(str(OmegaConf.select(self.config, "hydra.runtime.cwd", default=None) or Path.cwd()))
        sweep_dir = launch_dir / str(self.config.hydra.sweep.dir)  # relative to where the command started
        storage_url = absolute_url(self.storage, launch_dir) if self.storage else SQLITE + str(sweep_dir / STUDY_DB)
        study_name = self.study_name or sweep_dir.name
        storage = make_storage(storage_url, self.heartbeat_interval, self.grace_period)
        # Where a job finds the study if it was left to its defaults (a password stays where the user put it).
        has_password = make_url(storage_url).password is not None
        link = [] if has_password else [f"++hydra.sweeper.storage={hydra_quoted(storage_url)}"]
        if not self.study_name:
            link.append(f"++hydra.sweeper.study_name={hydra_quoted(study_name)}")
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        study = optuna.create_study(storage=storage, study_name=study_name, direction=self.direction,
                                    pruner=self.pruner, load_if_exists=True)
        if study.direction.name.lower() != self.direction:
            raise UserError(f"hydra.sweeper.direction={self.direction}: the study {study_name} in this storage "
                            f"{study.direction.name.lower()}s its value; use that direction or another study_name")
        metric = str(OmegaConf.select(self.config, "optimized_metric", default="the return value"))
        # Trials of this sweep folder that finished: a resumed search (`-m resume=<sweep dir>`) runs only the
        # rest of its `n_trials`; a new sweep folder, even against a shared study, runs `n_trials` more.
        done = sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
                   if Path(str(t.user_attrs.get(RUN_DIR, "/"))).parent == sweep_dir)
        log.info("study %s in %s: %d trials so far (%d of them finished in this sweep folder); %d more, %s %s",
                 study_name, shown_url(storage_url), len(study.trials), done, self.n_trials - done, self.direction,
                 metric)
        returns: list[Sequence[JobReturn]] = []
        outcomes: list[str] = []
        while len(outcomes) < self.n_trials - done:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks stale-trial handling experimental
                optuna.storages.fail_stale_trials(study)
            trials = [self._ask(study, space) for _ in range(min(self.n_jobs, self.n_trials - done - len(outcomes)))]
            by_number = {t.number: t for t in trials}
            # The launcher numbers a batch's jobs from its first: one launch per run of consecutive trial numbers.
            for run in consecutive(sorted(by_number)):
                batch = [[*space.overrides(by_number[n].params), f"++hydra.sweeper.trial={n}", *link] for n in run]
                try:
                    with heartbeats(storage, study, run):
                        results = self.launcher.launch(batch, initial_job_idx=run[0])
                except BaseException as exc:  # no job ran (a config that does not compose), or one was stopped
                    # Stopped (SIGTERM, Ctrl-C), not failed by its parameters: `-m resume=` runs them again.
                    stopped = isinstance(exc, KeyboardInterrupt) or getattr(exc, "code", None) == TERMINATED_EXIT_CODE
                    retry = retry_once()
                    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                        if trial.number in by_number:  # this batch's, launched or not
                            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
                            if stopped:
                                retry(study, trial)
                    raise
                returns.append(results)
                outcomes += [self._tell(study, by_number[n], ret) for n, ret in zip(run, results)]
            write_study_files(study, sweep_dir, shown_url(storage_url), metric)
            failed = outcomes.count("failed")  # a diverged trial is a result of its parameters, not a failure
            if failed and failed / len(outcomes) > self.max_failure_rate:
                log.error("search stopped: %d of %d trials failed (hydra.sweeper.max_failure_rate=%s)",
                          failed, len(outcomes), self.max_failure_rate)
                errors = [job_error(r) for batch in returns for r in batch]
                # The first failed job's own error, as Hydra's basic sweeper raises it, else what was missing.
                raise next((e for e in errors if e is not None and not isinstance(e, TrainingDiverged)),
                           UserError(f"optimized_metric: {failed} of {len(outcomes)} trials returned no number; "
                                     "the value comes from each job's results.json (did the runs validate?)"))
        log.info("study %s: %s", study_name, ", ".join(f"{outcomes.count(s)} {s}" for s in sorted(set(outcomes))))
        return returns


def job_error(ret: JobReturn) -> BaseException | None:
    """The exception a job raised, or None if it completed."""
    try:
        _ = ret.return_value  # a failed job's return value raises its exception
    except BaseException as exc:  # noqa: BLE001 - handed back, not handled
        return exc
    return None


@contextmanager
def heartbeats(storage: optuna.storages.RDBStorage, study: optuna.Study, numbers: list[int]) -> Iterator[None]:
    """Record a heartbeat for these trials every `heartbeat_interval` seconds while the block runs."""
    interval = storage.get_heartbeat_interval()
    if not interval:
        yield
        return
    study_id = storage.get_study_id_from_name(study.study_name)
    ids = [storage.get_trial_id_from_study_id_trial_number(study_id, n) for n in numbers]
    stop = threading.Event()

    def beat() -> None:
        while True:
            for trial_id in ids:
                try:
                    storage.record_heartbeat(trial_id)
                except Exception as exc:  # a busy database must not end the search
                    log.warning("heartbeat of a trial not recorded: %s", first_line(exc))
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name="optuna-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def write_study_files(study: optuna.Study, sweep_dir: Path, storage: str, metric: str) -> None:
    """study.json (every trial, for the report) and optimization_results.yaml (as Hydra's Optuna sweeper writes)."""
    direction = study.direction.name.lower()
    rows = [{"number": t.number, "state": t.state.name.lower(),
             "value": float(t.value) if isinstance(t.value, (int, float)) and math.isfinite(t.value) else None,
             "params": dict(t.params), "run_dir": t.user_attrs.get(RUN_DIR),
             "pruned_at_epoch": t.user_attrs.get(PRUNED_AT_EPOCH),
             "duration_s": round(t.duration.total_seconds(), 1) if t.duration else None}
            for t in study.get_trials(deepcopy=False)]
    done = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    best = (max if direction == "maximize" else min)(done, key=lambda r: r["value"]) if done else None
    write_json_atomic(sweep_dir / STUDY_FILE, {"study_name": study.study_name, "storage": storage,
                                               "direction": direction, "metric": metric, "best": best, "trials": rows})
    results = {"name": "optuna", "study_name": study.study_name, "storage": storage, "direction": direction,
               "best_trial": best and best["number"], "best_params": best and best["params"],
               "best_value": best and best["value"]}
    write_atomic(sweep_dir / OPTIMIZATION_RESULTS, lambda h: yaml.safe_dump(results, h, sort_keys=False))
