"""scheduler=onecycle: OneCycleLR over the whole run unless total_steps is given."""

from __future__ import annotations

from types import SimpleNamespace

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch import nn

from resnet_exp.config import CONF_DIR, register_schemas
from resnet_exp.module import ImageClassifier


def _scheduler(*overrides: str, run_steps: int):
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["scheduler=onecycle", "optimizer.lr=0.4", *overrides])
    module = ImageClassifier(nn.Linear(4, 3), instantiate(cfg.optimizer), num_classes=3,
                             scheduler=instantiate(cfg.scheduler))
    # What Lightning knows once the fit starts: here one epoch of run_steps batches.
    module._trainer = SimpleNamespace(estimated_stepping_batches=run_steps, num_training_batches=run_steps,
                                      accumulate_grad_batches=1)
    return cfg, module.configure_optimizers()


def test_onecycle_spans_the_whole_run_and_peaks_at_the_optimizer_lr() -> None:
    cfg, opt = _scheduler(run_steps=40)
    assert cfg.scheduler.interval.value == "step"
    scheduler, optimizer = opt["lr_scheduler"]["scheduler"], opt["optimizer"]
    assert scheduler.total_steps == 40
    lrs = []
    for _ in range(40):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    # Warm-up to 0.4 at 25% of the run (step 10), then down to 0.4 / 25 / 1e4 at the end.
    assert max(lrs[:12]) == max(lrs) and abs(max(lrs) - 0.4) < 0.01
    assert lrs[-2] < 1e-3


def test_onecycle_total_steps_given_wins() -> None:
    _, opt = _scheduler("scheduler.lr_scheduler.total_steps=100", run_steps=40)
    assert opt["lr_scheduler"]["scheduler"].total_steps == 100
