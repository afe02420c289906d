"""What the sweeper and its jobs open: the study's storage (a database, so that any number of processes can run
one study: sqlite for one machine, postgresql://... for many), pruner and sampler."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from resnet_exp.errors import UserError, first_line

if TYPE_CHECKING:
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler
    from optuna.storages import RDBStorage

SQLITE = "sqlite:///"
CREATE_ATTEMPTS = 5


def plain(spec: Any) -> Any:
    """A config node as plain Python; anything else as it is."""
    return OmegaConf.to_container(spec, resolve=True) if isinstance(spec, DictConfig) else spec


def absolute_url(url: str, cwd: Path) -> str:
    """A sqlite URL's relative path made absolute from `cwd`, so that every job opens the same file."""
    if not url.startswith(SQLITE) or url.startswith(SQLITE + "/") or url == SQLITE + ":memory:":
        return url
    return SQLITE + str(Path(cwd) / url[len(SQLITE):])


def shown_url(url: str) -> str:
    """The storage URL without its password, for files and logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def retry_once() -> Any:
    """What happens to a trial whose process died or was stopped: failed, and its parameters queued for the
    next ask as a new trial (once)."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    return RetryHeartbeatStaleTrialCallback(max_retry=1)


def make_storage(url: str, heartbeat_interval: int | None = None, grace_period: int | None = None) -> RDBStorage:
    """Optuna's storage; with heartbeats, a trial whose process died is retried by the next ask."""
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RDBStorage
    from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError

    # A few processes share one sqlite file: wait for its lock, do not fail.
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(CREATE_ATTEMPTS):
        try:
            if url.startswith(SQLITE) and ":memory:" not in url:
                Path(url[len(SQLITE):]).parent.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5, and used on purpose
                warnings.simplefilter("ignore", ExperimentalWarning)
                return RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=heartbeat_interval,
                                  grace_period=grace_period, heartbeat_stale_trial_callback=(
                                      retry_once() if heartbeat_interval else None))
        except (IntegrityError, OperationalError, ArgumentError, ImportError, ValueError) as exc:
            # Processes started together on a new database race to create its tables and schema version;
            # the loser finds them made on its next try.
            if isinstance(exc, (IntegrityError, OperationalError)) and attempt < CREATE_ATTEMPTS - 1:
                time.sleep(0.5 * (attempt + 1))
                continue
            raise UserError(f"hydra.sweeper.storage={shown_url(url) if '://' in url else url}: cannot open it "
                            f"({type(exc).__name__}: {first_line(exc)}); use sqlite:///<file> or "
                            "postgresql://<user>@<host>/<database>") from None


def _built(spec: Mapping[str, Any], what: str, base: type, hint: str, **kwargs: Any) -> Any:
    """An Optuna sampler or pruner from its `_target_` spec; UserError naming the target if it is not one."""
    from hydra.utils import instantiate

    key = f"hydra.sweeper.{what}._target_={spec.get('_target_')}"
    try:
        made = instantiate(spec, **kwargs)
    except Exception as exc:
        raise UserError(f"{key}: cannot build it ({first_line(exc.__cause__ or exc)}); {hint}") from None
    if not isinstance(made, base):
        raise UserError(f"{key}: not an Optuna {what}; {hint}")
    return made


def make_pruner(spec: Any) -> BasePruner:
    """median, hyperband, none, or a mapping with the `_target_` of any Optuna pruner and its arguments."""
    from optuna import pruners

    named = {"median": pruners.MedianPruner, "hyperband": lambda: pruners.HyperbandPruner(min_resource=1),
             "none": pruners.NopPruner}
    if spec is None or (isinstance(spec, str) and spec in named):
        return named[spec or "none"]()
    allowed = f"choose one of {', '.join(named)}, or {{_target_: optuna.pruners.NAME, ...}}"
    if not isinstance(spec, Mapping) or "_target_" not in spec:
        raise UserError(f"hydra.sweeper.pruner={spec}: no such pruner; {allowed}")
    return _built(spec, "pruner", pruners.BasePruner, allowed)


def make_sampler(spec: Mapping[str, Any] | None, offset: int) -> BaseSampler:
    """The configured sampler, its seed (if any) moved on by `offset` (the trial number), so that a rerun explores
    new points and two processes sharing a study never propose the same random points."""
    from optuna import samplers

    if spec is None:
        return samplers.TPESampler()
    seed = spec.get("seed")
    return _built(spec, "sampler", samplers.BaseSampler, "e.g. optuna.samplers.TPESampler",
                  **({"seed": int(seed) + offset} if seed is not None else {}))
