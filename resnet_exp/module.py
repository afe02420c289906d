"""The LightningModule: cross-entropy classification around any backbone."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.optim import Optimizer
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from resnet_exp.callbacks.lightning_shims import FastHookName
from resnet_exp.callbacks.probes import logging_due
from resnet_exp.errors import TrainingDiverged, parse_enum
from resnet_exp.schedules import ResumePoint, Schedule

# Sums of a training epoch (loss x n over 60k samples) keep full precision whatever the trainer's.
TRAIN_SUMS_DTYPE = torch.float64


class TTA(str, Enum):
    """What validation and test take the logits of: each image, or the mean over it and its flip."""

    none = "none"
    flip = "flip"


def split_weight_decay(module: nn.Module, decay_norm_and_bias: bool) -> list[dict[str, Any]]:
    """Parameter groups where norm weights and biases (all 1-d parameters) skip weight decay."""
    params = [p for p in module.parameters() if p.requires_grad]
    if decay_norm_and_bias:
        return [{"params": params}]
    # The names show in the loggers (the LR monitor's `lr-SGD/weights`) and in curves.png.
    return [{"params": [p for p in params if p.ndim > 1], "name": "weights"},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, "name": "norms_biases_no_decay"}]


class SampleMean(Metric):
    """Mean over samples of per-batch means, each batch weighed by its size (torchmetrics 1.9's MeanMetric
    ignores `weight` with nan_strategy="disable"). The count is a Python int: no sync per step."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, batch_mean: torch.Tensor, samples: int) -> None:
        self.total += batch_mean.detach().to(self.total.dtype) * samples
        self.count += samples

    def compute(self) -> torch.Tensor:
        return (self.total / self.count).float()


def train_step_sums(logits: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor, top5: bool) -> torch.Tensor:
    """[loss x n, top-1 correct, top-5 correct (0 unless `top5`), n] of one batch, on the device.
    Soft targets (MixUp/CutMix) count against their dominant label (the largest share)."""
    if labels.ndim == 2:
        labels = labels.argmax(dim=1)
    n = labels.shape[0]
    correct = (logits.argmax(dim=1) == labels).sum()
    correct5 = ((logits.topk(5, dim=1).indices == labels[:, None]).any(dim=1).sum() if top5
                else torch.zeros_like(correct))
    loss = loss.detach().to(TRAIN_SUMS_DTYPE)
    count = torch.full_like(loss, n)  # a fill, not a host-to-device copy
    return torch.stack([loss * n, correct.to(loss.dtype), correct5.to(loss.dtype), count])


def _accuracy_metrics(num_classes: int, prefix: str) -> MetricCollection:
    # validate_args=False: its checks call torch.unique on the labels, a sync per step (the loss checks them).
    metrics: dict[str, Any] = {"acc": MulticlassAccuracy(num_classes, average="micro", validate_args=False)}
    if num_classes > 10:
        metrics["acc_top5"] = MulticlassAccuracy(num_classes, top_k=5, average="micro", validate_args=False)
    return MetricCollection(metrics, prefix=prefix)


class ImageClassifier(FastHookName, pl.LightningModule):
    """Trains `model` with cross-entropy; logs loss and top-1 (and top-5) accuracy per split. `optimizer` is a
    factory called with the parameter groups, `scheduler` a `Schedule` (None: a constant rate)."""

    def __init__(self, model: nn.Module, optimizer: Callable[..., Optimizer], num_classes: int,
                 scheduler: Schedule | None = None, label_smoothing: float = 0.0, decay_norm_and_bias: bool = False,
                 example_input_shape: Iterable[int] | None = None, tta: str = "none") -> None:
        super().__init__()
        tta = parse_enum(TTA, "tta", tta).value  # a plain string in the hparams
        if example_input_shape is not None:  # a tuple: weights_only loads reject Hydra's ListConfig
            example_input_shape = tuple(int(n) for n in example_input_shape)
        # The run logs its whole config itself; logger=False keeps these out of it as loose keys.
        self.save_hyperparameters(ignore=["model", "optimizer", "scheduler"], logger=False)
        self.model = model
        self.optimizer_factory = optimizer
        self.schedule = scheduler
        # Takes class indices, or the soft targets of MixUp/CutMix (probabilities per class).
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.tta_flip = tta == TTA.flip.value
        self.top5 = num_classes > 10
        # [loss x n, top-1 correct, top-5 correct, n] of the epoch, on the device: tensor ops only per step.
        # A plain attribute, not a buffer (a bf16-true module would cast a buffer).
        self.train_sums: torch.Tensor | None = None
        self.val_metrics = _accuracy_metrics(num_classes, "val/")
        self.test_metrics = _accuracy_metrics(num_classes, "test/")
        self.val_loss = SampleMean()
        self.test_loss = SampleMean()
        # Best val/acc of the run, resumed segments included (0-d, on the device); saved in checkpoints.
        self.val_acc_best: torch.Tensor | None = None
        # (step, learning rate, loss) of each step since the last divergence check, losses on the device.
        self.unchecked_steps: list[tuple[int, Any, torch.Tensor]] = []
        # Where a resumed fit's checkpoint left the schedule (on_load_checkpoint runs before configure_optimizers).
        self.resumed_schedule: ResumePoint | None = None
        if example_input_shape is not None:  # ModelSummary then shows output shapes and FLOPs per stage
            self.example_input_array = torch.zeros(1, *example_input_shape)

    def _attached_trainer(self) -> pl.Trainer | None:
        """The trainer, or None when the module is used without one (e.g. a step called directly)."""
        try:
            return self.trainer
        except RuntimeError:  # LightningModule.trainer raises when no trainer is attached
            return None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def eval_logits(self, images: torch.Tensor) -> torch.Tensor:
        """The logits validation and test score: with `tta=flip`, the mean of two passes."""
        logits = self(images)
        return (logits + self(images.flip(3))) / 2 if self.tta_flip else logits

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Both span the checkpoint: a resumed run reports what an uninterrupted one would.
        checkpoint["metric_states"] = {
            "val_acc_best": None if self.val_acc_best is None else float(self.val_acc_best),
            "train_sums": None if self.train_sums is None else self.train_sums.detach().cpu(),
        }
        if self.schedule is not None:  # the length the schedule was sized to: a resume compares
            checkpoint["schedule"] = {"sized_to": self.schedule.sized_to}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("metric_states", {})
        best = saved.get("val_acc_best")
        if isinstance(best, dict):  # older checkpoints: a torchmetrics MaxMetric's state
            best = best["max_value"] if best.get("update_count") else None
        self.val_acc_best = None if best is None else torch.tensor(float(best), dtype=torch.float32)
        sums = saved.get("train_sums")
        self.train_sums = None if sums is None else sums.to(dtype=TRAIN_SUMS_DTYPE)
        self.resumed_schedule = ResumePoint.from_checkpoint(checkpoint)

    def on_fit_start(self) -> None:
        # Lightning restores a checkpoint before it moves the module to its device: move them along.
        self.train_sums, self.val_acc_best = (None if t is None else t.to(self.device)
                                              for t in (self.train_sums, self.val_acc_best))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = self.criterion(logits, labels)
        # A few device ops and no host value per step: a `self.log` costs ~1 ms of host time, so the step
        # loss is logged only on the steps the loggers write, and the epoch's values are device sums.
        if self.train_sums is None or self.train_sums.device != loss.device:
            self.train_sums = torch.zeros(4, device=loss.device, dtype=TRAIN_SUMS_DTYPE)
        with torch.no_grad():
            self.train_sums += train_step_sums(logits, labels, loss, self.top5)
        trainer = self._attached_trainer()
        optimizers = trainer.optimizers if trainer is not None else []
        lr = optimizers[0].param_groups[0]["lr"] if optimizers else math.nan
        self.unchecked_steps.append((self.global_step, lr, loss.detach()))
        if trainer is None or logging_due(trainer, self.global_step):
            # Not prog_bar: Lightning would read it on every later batch (a sync); the bar reads callback_metrics.
            self.log("train/loss_step", loss, on_step=True, on_epoch=False)
            self._stop_if_diverged()
        return loss

    def _stop_if_diverged(self) -> None:
        """Raise TrainingDiverged if a loss of this epoch so far was NaN/inf (its running sum says so), naming
        the first such step and the rate it ran at. A host read: only on logging steps and at epoch end."""
        total = float(self.train_sums[0]) if self.train_sums is not None else 0.0
        steps, self.unchecked_steps = self.unchecked_steps, []
        if math.isfinite(total):
            return
        step, lr = self.global_step, math.nan
        if steps:  # the first step whose loss was NaN/inf (else the sum overflowed: the last step)
            finite = torch.isfinite(torch.stack([loss for _, _, loss in steps])).tolist()
            step, lr, _ = steps[finite.index(False) if False in finite else -1]
        raise TrainingDiverged(step=step, loss=total, lr=float(lr))

    def on_train_epoch_end(self) -> None:
        if self.train_sums is None:  # an epoch without a training batch
            return
        self._stop_if_diverged()
        loss_sum, correct, correct5, n = self.trainer.strategy.reduce(self.train_sums, reduce_op="sum")
        n = n.clamp(min=1)
        self.log("train/loss_epoch", (loss_sum / n).float(), prog_bar=True)
        self.log("train/acc", (correct / n).float(), prog_bar=True)
        if self.top5:
            self.log("train/acc_top5", (correct5 / n).float(), prog_bar=True)
        self.train_sums = None

    def _score(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> None:
        images, labels = batch
        logits = self.eval_logits(images)
        getattr(self, f"{split}_loss").update(self.criterion(logits, labels), labels.shape[0])
        getattr(self, f"{split}_metrics").update(logits, labels)

    def _epoch_values(self, split: str) -> dict[str, torch.Tensor]:
        """The epoch's loss and accuracies of `split` ("val/loss", ...); both metrics start afresh."""
        loss, metrics = getattr(self, f"{split}_loss"), getattr(self, f"{split}_metrics")
        values = {f"{split}/loss": loss.compute(), **metrics.compute()}
        loss.reset()
        metrics.reset()
        return values

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._score(batch, "val")

    def on_validation_epoch_end(self) -> None:
        metrics = self._epoch_values("val")
        self.log_dict(metrics, prog_bar=True)
        if self.trainer.sanity_checking:
            return  # the untrained sanity-check pass is no epoch: it must not count as the best
        acc = metrics["val/acc"].detach()
        # fmax: a NaN accuracy never replaces the best (as torchmetrics' MaxMetric drops NaN).
        best = acc if self.val_acc_best is None else torch.fmax(self.val_acc_best.to(acc.device), acc)
        self.val_acc_best = best
        self.log("val/acc_best", best, prog_bar=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._score(batch, "test")

    def on_test_epoch_end(self) -> None:
        self.log_dict(self._epoch_values("test"))

    def _run_length(self) -> tuple[float | None, int]:
        """Optimizer steps in this fit and per epoch ((None, 1) without a trainer: length unknown)."""
        trainer = self._attached_trainer()
        if trainer is None:
            return None, 1
        total = trainer.estimated_stepping_batches  # also sets num_training_batches
        if not math.isfinite(total) or not math.isfinite(trainer.num_training_batches):
            return math.inf, 1  # no max_epochs/max_steps: schedules that need a length refuse it
        return total, math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches)

    def _optimizer(self) -> Optimizer:
        return self.optimizer_factory(params=split_weight_decay(self.model, self.hparams.decay_norm_and_bias))

    def configure_optimizers(self) -> Any:
        optimizer = self._optimizer()
        if self.schedule is None or self.schedule.constant:  # no need to ask for the run's length
            return optimizer
        built = self.schedule.build(optimizer, *self._run_length(), resumed=self.resumed_schedule)
        return {"optimizer": optimizer, "lr_scheduler": built}

    def fresh_training_state(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The optimizer's and scheduler's state a fit starts with, to compare with a checkpoint's."""
        optimizer = self._optimizer()
        built = None if self.schedule is None or self.schedule.constant else self.schedule.scheduler(optimizer, 1 << 30)
        return optimizer.state_dict(), None if built is None else built.state_dict()
