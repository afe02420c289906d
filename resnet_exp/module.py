"""The LightningModule: cross-entropy classification around any backbone."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import pytorch_lightning as pl
import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torchmetrics import MaxMetric, MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

OptimizerFactory = Callable[..., Optimizer]
SchedulerFactory = Callable[[Optimizer], LRScheduler]


def split_weight_decay(module: nn.Module, decay_norm_and_bias: bool) -> list[dict[str, Any]]:
    """Parameter groups where norm weights and biases (all 1-d parameters) skip weight decay."""
    params = [p for p in module.parameters() if p.requires_grad]
    if decay_norm_and_bias:
        return [{"params": params}]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def _accuracy_metrics(num_classes: int, prefix: str) -> MetricCollection:
    # validate_args=False: the argument checks call torch.unique on the labels, a GPU sync per
    # step (labels are range-checked by the loss anyway).
    metrics: dict[str, Any] = {"acc": MulticlassAccuracy(num_classes, average="micro", validate_args=False)}
    if num_classes > 10:
        metrics["acc_top5"] = MulticlassAccuracy(num_classes, top_k=5, average="micro", validate_args=False)
    return MetricCollection(metrics, prefix=prefix)


class ImageClassifier(pl.LightningModule):
    """Trains `model` with cross-entropy; logs loss and top-1 (and top-5) accuracy per split.

    `optimizer` and `scheduler` are factories (Hydra partials): the module calls them with its
    parameter groups and optimizer, so they stay out of the saved hyperparameters.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory,
        num_classes: int,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        scheduler_frequency: int = 1,
        label_smoothing: float = 0.0,
        decay_norm_and_bias: bool = False,
        example_input_shape: Iterable[int] | None = None,
    ) -> None:
        super().__init__()
        if example_input_shape is not None:
            # A plain tuple: Hydra hands lists over as ListConfig, which weights_only loads reject.
            example_input_shape = tuple(int(n) for n in example_input_shape)
        # The run logs its whole config itself; logger=False keeps these out of it as loose keys.
        self.save_hyperparameters(ignore=["model", "optimizer", "scheduler"], logger=False)
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.train_metrics = _accuracy_metrics(num_classes, "train/")
        # nan_strategy="disable": the NaN check would be a GPU sync per step.
        self.train_loss = MeanMetric(nan_strategy="disable")
        self.val_metrics = _accuracy_metrics(num_classes, "val/")
        self.test_metrics = _accuracy_metrics(num_classes, "test/")
        self.val_loss = MeanMetric(nan_strategy="disable")
        self.val_acc_best = MaxMetric()
        if example_input_shape is not None:
            # Lets ModelSummary show output shapes and FLOPs per stage.
            self.example_input_array = torch.zeros(1, *example_input_shape)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def on_train_start(self) -> None:
        # The sanity-check validation must not count as the best epoch.
        self.val_acc_best.reset()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = self.criterion(logits, labels)
        # Per step only device-side updates: each `self.log` call costs Lightning ~1 ms of host time
        # (and a logged step value read by the progress bar is a GPU sync), so the epoch values are
        # accumulated in metrics and logged in on_train_epoch_end, and the step loss is logged only
        # on the steps the loggers write (trainer.log_every_n_steps).
        self.train_metrics.update(logits, labels)
        self.train_loss.update(loss.detach(), weight=labels.shape[0])
        every = self.trainer.log_every_n_steps if self._trainer is not None else 1
        if every and (self.global_step + 1) % every == 0:
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def on_train_epoch_end(self) -> None:
        self.log("train/loss_epoch", self.train_loss.compute(), prog_bar=True)
        self.train_loss.reset()
        self.log_dict(self.train_metrics.compute(), prog_bar=True)
        self.train_metrics.reset()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        logits = self(images)
        self.val_loss.update(self.criterion(logits, labels), weight=labels.shape[0])
        self.val_metrics.update(logits, labels)

    def on_validation_epoch_end(self) -> None:
        metrics = self.val_metrics.compute()
        self.val_metrics.reset()
        self.val_acc_best.update(metrics["val/acc"])
        self.log("val/loss", self.val_loss.compute(), prog_bar=True)
        self.val_loss.reset()
        self.log_dict(metrics, prog_bar=True)
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        logits = self(images)
        self.test_metrics.update(logits, labels)
        self.log("test/loss", self.criterion(logits, labels), on_step=False, on_epoch=True)
        self.log_dict(self.test_metrics, on_step=False, on_epoch=True)

    def _make_scheduler(self, optimizer: Optimizer) -> LRScheduler:
        # A schedule over the whole run (OneCycleLR's total_steps: null) learns its length here,
        # where the trainer knows the epochs, batches per epoch and accumulation.
        if "total_steps" in getattr(self.scheduler_factory, "keywords", {}) \
                and self.scheduler_factory.keywords["total_steps"] is None:
            return self.scheduler_factory(optimizer, total_steps=int(self.trainer.estimated_stepping_batches))
        return self.scheduler_factory(optimizer)

    def configure_optimizers(self) -> Any:
        groups = split_weight_decay(self.model, self.hparams.decay_norm_and_bias)
        optimizer = self.optimizer_factory(params=groups)
        if self.scheduler_factory is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": self._make_scheduler(optimizer),
                "interval": self.hparams.scheduler_interval,
                "frequency": self.hparams.scheduler_frequency,
            },
        }
