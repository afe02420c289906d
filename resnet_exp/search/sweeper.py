"""The Hydra Sweeper of a search (`hydra/sweeper=optuna`, chosen by `hparams_search=...`).

Each round: fail the trials whose process died (heartbeats), ask Optuna for `n_jobs` trials,
launch them as jobs through the configured launcher (in this process, as local processes, on
SLURM), then tell Optuna how each ended: COMPLETE with the job's return value (the config's
`optimized_metric`), PRUNED when the job's pruning callback stopped it, FAIL when it raised.

A job finds its trial in its own config: the sweeper adds `++hydra.sweeper.trial=<number>` to the
job's overrides (and the storage and study name when they were left to their defaults), so a job in
another process or on another machine reaches the same database. The job's number is its trial's
number, so job folders are named by trial (`3-0.0892-0.000123-post`).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from resnet_exp.app.arguments import hydra_quoted
from resnet_exp.errors import TrainingDiverged, UserError, first_line
from resnet_exp.search import PRUNED_AT_EPOCH, RUN_DIR
from resnet_exp.search.space import SearchSpace, search_space
from resnet_exp.search.study import (
    DIRECTIONS,
    absolute_url,
    default_storage,
    has_password,
    heartbeats,
    make_pruner,
    make_sampler,
    make_storage,
    open_study,
    shown_url,
    write_study_files,
)

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)


def consecutive(numbers: Sequence[int]) -> list[list[int]]:
    """`numbers` cut into runs of consecutive numbers ([3, 4, 6] -> [[3, 4], [6]])."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and runs[-1][-1] + 1 == n:
            runs[-1].append(n)
        else:
            runs.append([n])
    return runs


class OptunaSearch(Sweeper):
    """A Hydra sweeper that runs an Optuna study; its keys are those of Hydra's Optuna sweeper
    plugin (n_trials, direction, storage, study_name, sampler, params, n_jobs, max_failure_rate)
    plus `pruner`, `monitor` and the heartbeat settings."""

    def __init__(self, n_trials: int = 20, direction: str = "maximize", storage: str | None = None,
                 study_name: str | None = None, sampler: Mapping[str, Any] | None = None,
                 pruner: Any = "median", monitor: str = "val/acc", params: Mapping[str, str] | None = None,
                 n_jobs: int = 1, max_failure_rate: float = 0.0, heartbeat_interval: int | None = 60,
                 grace_period: int | None = None, trial: int | None = None) -> None:
        # `trial` is set only in each job's own config (the job's link to its trial), never here.
        def require(ok: bool, key: str, value: Any, allowed: str) -> None:
            if not ok:
                raise UserError(f"hydra.sweeper.{key}={value}: {allowed}")

        require(isinstance(n_trials, int) and n_trials >= 1, "n_trials", n_trials, "must be a whole number >= 1")
        require(isinstance(n_jobs, int) and n_jobs >= 1, "n_jobs", n_jobs, "must be a whole number >= 1")
        require(direction in DIRECTIONS, "direction", direction, f"must be one of {', '.join(DIRECTIONS)}")
        require(0.0 <= float(max_failure_rate) <= 1.0, "max_failure_rate", max_failure_rate, "must be in [0, 1]")
        require(heartbeat_interval is None or int(heartbeat_interval) >= 1, "heartbeat_interval",
                heartbeat_interval, "must be null (no heartbeats) or a number of seconds >= 1")
        require(not storage or bool(study_name), "study_name", "null",
                "a shared storage needs a study name; set hydra.sweeper.study_name=NAME")
        self.n_trials, self.n_jobs, self.direction = n_trials, n_jobs, direction
        self.storage, self.study_name, self.monitor = storage, study_name, monitor
        self.sampler_spec = OmegaConf.to_container(sampler, resolve=True) if isinstance(sampler, DictConfig) else sampler
        self.pruner_spec = OmegaConf.to_container(pruner, resolve=True) if isinstance(pruner, DictConfig) else pruner
        self.pruner = make_pruner(self.pruner_spec)  # a bad pruner fails before anything starts
        make_sampler(self.sampler_spec, 0)
        self.params = dict(params or {})
        self.max_failure_rate = float(max_failure_rate)
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def _launch_dir(self) -> Path:
        """The folder the command was started in (relative paths are taken from there)."""
        return Path(str(OmegaConf.select(self.config, "hydra.runtime.cwd", default=None) or Path.cwd()))

    def _sweep_dir(self) -> Path:
        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        return sweep_dir if sweep_dir.is_absolute() else self._launch_dir() / sweep_dir

    def _job_link(self, number: int, storage_url: str, study_name: str) -> list[str]:
        """The forced overrides that tell a job its trial (and where the study is, if defaulted)."""
        link = [f"++hydra.sweeper.trial={number}"]
        if not has_password(storage_url):  # a password stays where the user put it
            link.append(f"++hydra.sweeper.storage={hydra_quoted(storage_url)}")
        if not self.study_name:
            link.append(f"++hydra.sweeper.study_name={hydra_quoted(study_name)}")
        return link

    def _ask(self, study: optuna.Study, space: SearchSpace) -> optuna.trial.Trial:
        """A new trial (or one waiting to be retried), its sampler seeded by its trial number."""
        expected = len(study.get_trials(deepcopy=False))
        study.sampler = make_sampler(self.sampler_spec, expected)
        with warnings.catch_warnings():  # ask-and-tell with heartbeats: this sweeper records them itself
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
            trial = study.ask()
        if trial.number != expected:  # another process took that number first
            study.sampler = make_sampler(self.sampler_spec, trial.number)
        for name, dist in space.distributions.items():
            _suggest(trial, name, dist)
        return trial

    def _tell(self, study: optuna.Study, trial: optuna.trial.Trial, ret: JobReturn) -> str:
        """Tell Optuna how the job of `trial` ended; returns the state's name."""
        from optuna.trial import TrialState

        run_dir = OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir", default=None) if ret.hydra_cfg else None
        if run_dir:
            trial.set_user_attr(RUN_DIR, str(run_dir))
        if ret.status != JobStatus.COMPLETED:
            error = job_error(ret)
            trial.set_user_attr("error", first_line(error)[:300] if error is not None else "failed")
            study.tell(trial.number, state=TrialState.FAIL)
            return "diverged" if isinstance(error, TrainingDiverged) else "failed"
        value = ret.return_value
        running = {t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        frozen = running.get(trial.number)
        if frozen is not None and PRUNED_AT_EPOCH in frozen.user_attrs:
            study.tell(trial.number, state=TrialState.PRUNED)
            return "pruned"
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            trial.set_user_attr("error", f"optimized_metric is {value!r} in the job's results.json, not a number "
                                         "(did the run validate? val/acc_best needs at least one validation)")
            study.tell(trial.number, state=TrialState.FAIL)
            return "failed"
        study.tell(trial.number, float(value))
        return "complete"

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        from optuna.storages import fail_stale_trials
        from optuna.trial import TrialState

        assert self.config is not None and self.launcher is not None
        space = search_space(self.params, arguments)
        if not space.distributions:
            raise UserError("hydra.sweeper.params: nothing to search; give at least one key a range, e.g. "
                            "optimizer.lr='tag(log, interval(1e-4, 1))', or a choice (a,b)")
        sweep_dir = self._sweep_dir()
        storage_url = absolute_url(self.storage, self._launch_dir()) if self.storage else default_storage(sweep_dir)
        study_name = self.study_name or sweep_dir.name
        storage = make_storage(storage_url, self.heartbeat_interval, self.grace_period)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        study = open_study(storage, study_name, self.direction, self.pruner)
        metric = str(OmegaConf.select(self.config, "optimized_metric", default="the return value"))
        done = self._done_here(study, sweep_dir)
        log.info("study %s in %s: %d trials so far (%d of them in this sweep folder); %d more, %s %s", study_name,
                 shown_url(storage_url), len(study.trials), done, self.n_trials - done, self.direction, metric)
        returns: list[Sequence[JobReturn]] = []
        outcomes: list[str] = []
        while len(outcomes) < self.n_trials - done:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks stale-trial handling experimental
                fail_stale_trials(study)
            trials = [self._ask(study, space) for _ in range(min(self.n_jobs, self.n_trials - done - len(outcomes)))]
            by_number = {t.number: t for t in trials}
            # The launcher numbers a batch's jobs from its first: one launch per run of trial numbers.
            for run in consecutive(sorted(by_number)):
                batch = [space.overrides(by_number[n].params) + self._job_link(n, storage_url, study_name)
                         for n in run]
                # (No validate_batch_is_legal: the launcher composes each job here, in this process,
                # before it starts it, and CheckBeforeStart has tried every choice and range end.)
                try:
                    with heartbeats(storage, study, run):
                        results = self.launcher.launch(batch, initial_job_idx=run[0])
                except BaseException:  # no job ran (e.g. a config that does not compose, Ctrl-C)
                    for number in run:
                        study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
                    raise
                returns.append(results)
                for number, ret in zip(run, results):
                    outcomes.append(self._tell(study, by_number[number], ret))
            write_study_files(study, sweep_dir, storage_url, metric)
            self._check_failures(outcomes, returns)
        log.info("study %s: %s", study_name, ", ".join(f"{outcomes.count(s)} {s}" for s in sorted(set(outcomes))))
        return returns

    @staticmethod
    def _done_here(study: optuna.Study, sweep_dir: Path) -> int:
        """Trials of this sweep folder that finished (complete or pruned): a resumed search
        (`-m resume=<sweep dir>`) runs only the rest of its `n_trials`; a new sweep folder, even
        against a shared study, runs `n_trials` more."""
        from optuna.trial import TrialState

        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        return sum(1 for t in finished if Path(str(t.user_attrs.get(RUN_DIR, "/"))).parent == sweep_dir.absolute())

    def _check_failures(self, outcomes: list[str], returns: list[Sequence[JobReturn]]) -> None:
        """Stop the search when more than `max_failure_rate` of its trials failed (a diverged
        training is a result of its hyper-parameters, not a failure of the search)."""
        failed = outcomes.count("failed")
        if failed and failed / len(outcomes) > self.max_failure_rate:
            log.error("search stopped: %d of %d trials failed (hydra.sweeper.max_failure_rate=%s)",
                      failed, len(outcomes), self.max_failure_rate)
            errors = [job_error(r) for batch in returns for r in batch]
            # The first failed job's own error, as Hydra's basic sweeper raises it; a job that ran
            # but returned no value has none: say what was missing.
            raise next((e for e in errors if e is not None and not isinstance(e, TrainingDiverged)),
                       UserError(f"optimized_metric: {failed} of {len(outcomes)} trials returned no number; the "
                                 "value comes from each job's results.json (did the runs validate?)"))


def job_error(ret: JobReturn) -> BaseException | None:
    """The exception a job raised, or None if it completed."""
    if ret.status == JobStatus.COMPLETED:
        return None
    try:
        _ = ret.return_value  # a failed job's return value raises its exception
    except BaseException as exc:  # noqa: BLE001 - handed back, not handled
        return exc
    return None


def _suggest(trial: optuna.trial.Trial, name: str, dist: Any) -> Any:
    """Ask the trial's sampler for one parameter, through Optuna's public suggest methods."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    raise TypeError(f"{name}: unsupported distribution {dist!r}")

