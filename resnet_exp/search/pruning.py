"""Inside a job of a search: its trial (from its own `hydra.sweeper` config, so from any process or machine), and
the callback that reports `val/acc` to it and, when Optuna prunes, stops the fit at the end of that epoch. Not
optuna-integration's callback, which is built for the `lightning` package's Trainer, not `pytorch_lightning`'s.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl

from resnet_exp.search import PRUNED_AT_EPOCH
from resnet_exp.search.study import make_pruner, make_storage, plain

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialLink:
    """Where a job's trial is: the study's storage and name, and the trial's number."""

    storage: str
    study_name: str
    number: int
    pruner: Any = "median"
    monitor: str = "val/acc"

    def open(self) -> optuna.trial.Trial:
        """The live trial, as the sweeper's process sees it (same database, same pruner)."""
        import optuna

        storage = make_storage(self.storage)
        study = optuna.load_study(study_name=self.study_name, storage=storage, pruner=make_pruner(self.pruner))
        trial_id = storage.get_trial_id_from_study_id_trial_number(
            storage.get_study_id_from_name(self.study_name), self.number)
        # Optuna builds Trial objects this way itself; there is no public lookup by number.
        return optuna.trial.Trial(study, trial_id)


def trial_of_job(sweeper: Any) -> TrialLink | None:
    """The trial of a job from its `hydra.sweeper` config, or None outside a search."""
    if sweeper is None or sweeper.get("trial") is None:
        return None
    return TrialLink(storage=str(sweeper.storage), study_name=str(sweeper.study_name), number=int(sweeper.trial),
                     pruner=plain(sweeper.get("pruner", "median")), monitor=str(sweeper.get("monitor") or "val/acc"))


class TrialPruning(pl.Callback):
    """Report `monitor` to the trial after each validation epoch; stop the fit when Optuna prunes it."""

    def __init__(self, link: TrialLink) -> None:
        self.link = link
        self.pruned_at_epoch: int | None = None
        self._trial: optuna.trial.Trial | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self._trial = self.link.open()
        for logger in trainer.loggers:  # wandb: which trial this run is
            if type(logger).__name__ == "WandbLogger":
                logger.experiment.config.update({"trial": self.link.number, "study": self.link.study_name},
                                                allow_val_change=True)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        prune = False
        if trainer.is_global_zero and self._trial is not None:
            value = trainer.callback_metrics.get(self.link.monitor)
            if value is None:
                log.warning("pruning: %s is not logged; the trial is never pruned", self.link.monitor)
            elif math.isfinite(float(value)):
                self._trial.report(float(value), step=trainer.current_epoch)
                prune = self._trial.should_prune()
        if not trainer.strategy.broadcast(prune):  # every rank stops, or none
            return
        self.pruned_at_epoch = epoch = trainer.current_epoch + 1  # from 1, as progress lines and summaries count
        trainer.should_stop = True
        if self._trial is not None:
            self._trial.set_user_attr(PRUNED_AT_EPOCH, epoch)
        log.info("trial %d pruned after epoch %d (by its %s); stopping", self.link.number, epoch, self.link.monitor)
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                run = logger.experiment
                run.summary.update({"trial/state": "pruned", "trial/pruned_at_epoch": epoch})
                run.tags = (*(run.tags or ()), "pruned")


def pruned_at_epoch(trainer: pl.Trainer) -> int | None:
    """The epoch (from 1) after which a search pruned this fit, or None."""
    return next((cb.pruned_at_epoch for cb in trainer.callbacks if isinstance(cb, TrialPruning)), None)


def trial_number(trainer: pl.Trainer) -> int | None:
    """The search trial this fit is, or None outside a search."""
    return next((cb.link.number for cb in trainer.callbacks if isinstance(cb, TrialPruning)), None)
