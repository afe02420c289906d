"""The Optuna side of a search: storage, study, sampler, pruner, heartbeats, and the files a search
leaves in its sweep folder (study.json for the report, optimization_results.yaml as Hydra's Optuna
plugin writes it).

Storage is a real database, so that any number of processes (this machine, SLURM jobs, other
machines) can run one study: each process asks the database for its next trial, Optuna's own
distributed mode. A sqlite file serves a few processes on one machine; a server database
(postgresql://...) serves machines.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from resnet_exp.errors import UserError, first_line
from resnet_exp.io import write_atomic, write_json_atomic
from resnet_exp.search import OPTIMIZATION_RESULTS, PRUNED_AT_EPOCH, RUN_DIR, STUDY_DB, STUDY_FILE

if TYPE_CHECKING:
    import optuna
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler
    from optuna.storages import RDBStorage

log = logging.getLogger(__name__)

PRUNERS = ("median", "hyperband", "none")
DIRECTIONS = ("maximize", "minimize")
SQLITE_TIMEOUT_S = 60  # a few processes share one sqlite file: wait for its lock, do not fail
CREATE_ATTEMPTS = 5


def default_storage(sweep_dir: Path) -> str:
    """A sqlite database in the sweep folder."""
    return f"sqlite:///{Path(sweep_dir).absolute() / STUDY_DB}"


def absolute_url(url: str, cwd: Path) -> str:
    """A sqlite URL with a relative path made absolute from `cwd` (the folder the command was
    started in), so that every job, wherever it runs, opens the same file; other URLs as they are."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url.startswith(prefix + "/") or url == prefix + ":memory:":
        return url
    return prefix + str(Path(cwd) / url[len(prefix):])


def has_password(url: str) -> bool:
    """Whether the URL holds a password (never repeated into job configs or files)."""
    from sqlalchemy.engine import make_url

    return make_url(url).password is not None


def shown_url(url: str) -> str:
    """The storage URL without its password, for files and logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def make_storage(url: str, heartbeat_interval: int | None = None, grace_period: int | None = None) -> RDBStorage:
    """Optuna's database storage; with a heartbeat, a trial whose process died is found (no
    heartbeat for `grace_period` seconds, default twice the interval) and retried by the next ask."""
    import warnings

    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
    from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError

    kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if url.startswith("sqlite") else {}
    for attempt in range(CREATE_ATTEMPTS):
        try:
            if url.startswith("sqlite:///") and ":memory:" not in url:
                Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5, and used on purpose
                warnings.simplefilter("ignore", ExperimentalWarning)
                return RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=heartbeat_interval,
                                  grace_period=grace_period, heartbeat_stale_trial_callback=(
                                      RetryHeartbeatStaleTrialCallback(max_retry=1) if heartbeat_interval else None))
        except (IntegrityError, OperationalError) as exc:
            # Processes started together on a new database race to create its tables and schema
            # version; the loser finds them made on its next try.
            if attempt == CREATE_ATTEMPTS - 1:
                raise _cannot_open(url, exc) from None
            time.sleep(0.5 * (attempt + 1))
        except (ArgumentError, ImportError, ValueError) as exc:
            raise _cannot_open(url, exc) from None
    raise AssertionError("unreachable")


def _cannot_open(url: str, exc: Exception) -> UserError:
    return UserError(f"hydra.sweeper.storage={shown_url(url) if '://' in url else url}: cannot open it "
                     f"({type(exc).__name__}: {first_line(exc)}); use sqlite:///<file> or "
                     "postgresql://<user>@<host>/<database>")


def make_pruner(spec: Any) -> BasePruner:
    """median, hyperband, none, or a mapping with the `_target_` of any Optuna pruner and its arguments."""
    import optuna
    from hydra.utils import instantiate

    if spec is None or spec == "none":
        return optuna.pruners.NopPruner()
    if spec == "median":
        return optuna.pruners.MedianPruner()
    if spec == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    allowed = f"choose one of {', '.join(PRUNERS)}, or {{_target_: optuna.pruners.NAME, ...}}"
    if not isinstance(spec, Mapping) or "_target_" not in spec:
        raise UserError(f"hydra.sweeper.pruner={spec}: no such pruner; {allowed}")
    try:
        pruner = instantiate(spec)
    except Exception as exc:
        raise UserError(f"hydra.sweeper.pruner._target_={spec['_target_']}: cannot build it "
                        f"({first_line(exc.__cause__ or exc)}); {allowed}") from None
    if not isinstance(pruner, optuna.pruners.BasePruner):
        raise UserError(f"hydra.sweeper.pruner._target_={spec['_target_']}: not an Optuna pruner; {allowed}")
    return pruner


def make_sampler(spec: Mapping[str, Any] | None, offset: int) -> BaseSampler:
    """The configured sampler, its seed (if it has one) moved on by `offset`: the sweeper passes the
    trial number, so every trial draws from its own seed, a rerun against the same study explores
    new points, and two processes sharing a study never propose the same random points."""
    import optuna
    from hydra.utils import instantiate

    if spec is None:
        return optuna.samplers.TPESampler()
    seed = spec.get("seed")
    try:
        sampler = instantiate(spec, **({"seed": int(seed) + offset} if seed is not None else {}))
    except Exception as exc:
        raise UserError(f"hydra.sweeper.sampler._target_={spec.get('_target_')}: cannot build it "
                        f"({first_line(exc.__cause__ or exc)}); e.g. optuna.samplers.TPESampler") from None
    if not isinstance(sampler, optuna.samplers.BaseSampler):
        raise UserError(f"hydra.sweeper.sampler._target_={spec.get('_target_')}: not an Optuna sampler")
    return sampler


def open_study(storage: RDBStorage, name: str, direction: str, pruner: BasePruner) -> optuna.Study:
    """The named study, created if it is not in the storage yet."""
    import optuna

    study = optuna.create_study(storage=storage, study_name=name, direction=direction, pruner=pruner,
                                load_if_exists=True)
    if study.direction.name.lower() != direction:
        raise UserError(f"hydra.sweeper.direction={direction}: the study {name} in this storage "
                        f"{study.direction.name.lower()}s its value; use that direction or another study_name")
    return study


@contextmanager
def heartbeats(storage: RDBStorage, study: optuna.Study, numbers: list[int]) -> Iterator[None]:
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


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One dict per trial of the study, every process's: number, state, value, params, run folder."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        duration = trial.duration.total_seconds() if trial.duration else None
        rows.append({"number": trial.number, "state": trial.state.name.lower(), "value": _finite(trial.value),
                     "params": dict(trial.params), "run_dir": trial.user_attrs.get(RUN_DIR),
                     "pruned_at_epoch": trial.user_attrs.get(PRUNED_AT_EPOCH),
                     "duration_s": round(duration, 1) if duration is not None else None})
    return rows


def best_trial(rows: list[dict[str, Any]], direction: str) -> dict[str, Any] | None:
    done = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    if not done:
        return None
    return (max if direction == "maximize" else min)(done, key=lambda r: r["value"])


def write_study_files(study: optuna.Study, sweep_dir: Path, storage_url: str, metric: str) -> dict[str, Any]:
    """study.json (every trial, for the report) and optimization_results.yaml (the best trial, as
    Hydra's Optuna sweeper writes it) in the sweep folder; returns study.json's content."""
    direction = study.direction.name.lower()
    rows = trial_rows(study)
    best = best_trial(rows, direction)
    summary = {"study_name": study.study_name, "storage": shown_url(storage_url), "direction": direction,
               "metric": metric, "best": best, "trials": rows}
    write_json_atomic(sweep_dir / STUDY_FILE, summary)
    results = {"name": "optuna", "study_name": study.study_name, "storage": shown_url(storage_url),
               "direction": direction, "best_trial": best["number"] if best else None,
               "best_params": best["params"] if best else None, "best_value": best["value"] if best else None}
    write_atomic(sweep_dir / OPTIMIZATION_RESULTS, lambda h: yaml.safe_dump(results, h, sort_keys=False))
    return summary
