"""Build the parts of a run from a composed config (each with `hydra.utils.instantiate` from its group), train,
test and write results.json. The entry points and the benchmark harness call these.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from resnet_exp import speed
from resnet_exp.callbacks.checkpoint import AtomicCheckpointIO
from resnet_exp.callbacks.profiler import NoProfiler
from resnet_exp.callbacks.results import fit_records, selected_checkpoint, selected_on, stopped_early
from resnet_exp.callbacks.sigterm import CheckpointOnSigterm, stop_on_sigterm
from resnet_exp.callbacks.train_clock import RunClock
from resnet_exp.config.lengths import check_run_lengths
from resnet_exp.data import ImageDataModule
from resnet_exp.errors import TrainingDiverged
from resnet_exp.io import (
    LAST_CHECKPOINT,
    RESULTS_FILE,
    check_checkpoint_fits,
    check_training_state_fits,
    is_rank_zero,
    load_header,
    readable_checkpoint,
    run_choices,
    to_number,
    write_json_atomic,
)
from resnet_exp.loggers import start_wandb_runs
from resnet_exp.models.complexity import train_flops_per_image
from resnet_exp.module import ImageClassifier
from resnet_exp.report.curves import write_curves
from resnet_exp.report.summary import eval_summary, log_to_files, run_summary
from resnet_exp.search.pruning import pruned_at_epoch, trial_number

log = logging.getLogger(__name__)

CHOICE_GROUPS = ("arch", "data", "optimizer", "scheduler", "trainer")


@dataclass
class Parts:
    """Everything a run is made of, built from one config."""

    datamodule: ImageDataModule
    model: nn.Module
    module: ImageClassifier
    trainer: pl.Trainer
    speed: speed.SpeedPlan
    train_flops: int | None = None  # forward + backward FLOPs per image (None: uncountable)
    clock: RunClock = field(default_factory=RunClock)  # the run's wall time, carried over resumes

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def build_parts(cfg: DictConfig, extra_callbacks: Sequence[pl.Callback] = ()) -> Parts:
    """Datamodule (with data checked), model, LightningModule, loggers and trainer (with the config's callbacks
    and `extra_callbacks`, e.g. a search trial's pruning)."""
    accelerator = str(cfg.trainer.accelerator)  # checked here, not in `validate`: a sweep may start on a CPU node
    if accelerator in ("gpu", "cuda"):
        speed.require_cuda("trainer.accelerator", accelerator,
                           "available: cpu (trainer=cpu, or trainer.accelerator=auto to use a GPU when there is one)")
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    if is_rank_zero(on_node=True):
        datamodule.prepare_data()  # fail on missing data before any logger or trainer starts
    model = instantiate(cfg.arch, num_classes=datamodule.num_classes, in_channels=datamodule.in_channels,
                        input_size=datamodule.image_size)
    spec = getattr(model, "spec", None)
    if spec is not None:
        spec.check_input_size("data.image_size", datamodule.image_size,
                              "a smaller stem (arch.stem_stride, arch.stem_pool=false)")
    fast = speed.plan(cfg.trainer, cfg.speed)  # fast GPU path: nulls resolved for this machine
    log.info("speed: %s", fast)
    fast.apply_backend()
    flops = train_flops_per_image(model, datamodule.example_input_shape)  # before compile
    model = fast.prepare_model(model)
    # No example forward under torch.compile: it would compile an extra graph for batch 1.
    module = instantiate(cfg.module, model=model, optimizer=instantiate(cfg.optimizer),
                         scheduler=instantiate(cfg.scheduler), num_classes=datamodule.num_classes,
                         example_input_shape=None if fast.compile else datamodule.example_input_shape)
    clock = RunClock()
    callbacks = [*(instantiate(c) for c in cfg.callbacks.values() if c), *extra_callbacks, clock,
                 CheckpointOnSigterm(Path(cfg.paths.output_dir) / LAST_CHECKPOINT)]
    loggers = [lg for lg in (instantiate(c) for c in cfg.logger.values() if c) if lg is not None]
    profiler = {} if cfg.trainer.get("profiler") else {"profiler": NoProfiler()}
    # No validation split: said to Lightning as no validation batches, not an empty loader it warns about.
    no_val = datamodule.val_size == 0 and not datamodule.val_on_test and cfg.trainer.get("limit_val_batches") is None
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()],
                          **({"limit_val_batches": 0} if no_val else {}), **profiler, **fast.trainer_kwargs())
    check_run_lengths(cfg.trainer, loader_batches(datamodule, trainer.world_size), trainer.max_epochs,
                      trainer.max_steps, trainer.accumulate_grad_batches, module.schedule)
    arch = HydraConfig.get().runtime.choices.arch
    if cfg.ckpt_path:
        check_checkpoint_fits(cfg.ckpt_path, module.state_dict(), arch)
        clock.carried_s = RunClock.carried_from(load_header(cfg.ckpt_path))
    elif cfg.get("init_weights"):  # a new run from another run's weights: nothing else of it
        check_checkpoint_fits(cfg.init_weights, module.state_dict(), arch, key="init_weights")
        module.load_state_dict(load_header(cfg.init_weights)["state_dict"])
    return Parts(datamodule=datamodule, model=model, module=module, trainer=trainer, speed=fast,
                 train_flops=flops, clock=clock)


def check_resume_fits(cfg: DictConfig, parts: Parts) -> None:
    """Before a fit that continues `cfg.ckpt_path`: the checkpoint's optimizer and scheduler state must be of
    the kind this run builds (a one-line error names what differs)."""
    if cfg.ckpt_path:
        schedule = parts.module.schedule
        check_training_state_fits(cfg.ckpt_path, *parts.module.fresh_training_state(),
                                  HydraConfig.get().runtime.choices,
                                  continues_plan=schedule is not None and schedule.sized_to_run)


def loader_batches(datamodule: ImageDataModule, world_size: int) -> dict[str, int]:
    """Batches per epoch and process of each loader the run uses, by the trainer key that limits it."""
    val = datamodule.val_dataloader()
    loaders = {"limit_train_batches": datamodule.train_dataloader(), "limit_test_batches": datamodule.test_dataloader(),
               **({"limit_val_batches": val} if val else {})}
    return {key: len(loader) // world_size if key == "limit_train_batches" else -(-len(loader) // world_size)
            for key, loader in loaders.items()}


def fit_and_test(cfg: DictConfig, parts: Parts, run_dir: Path) -> dict[str, Any]:
    """Train, test the best checkpoint, and write results.json (rank zero) into `run_dir`."""
    trainer, hc = parts.trainer, HydraConfig.get()
    # The resolved config as loggers see it, plus what the config alone cannot say.
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    # Named presets leave arch.depth empty; dashboards group by it, so record the built depth.
    config["arch"]["depth"] = getattr(parts.model, "depth", config["arch"].get("depth"))
    config["choices"] = {group: hc.runtime.choices.get(group) for group in CHOICE_GROUPS}
    config["overrides"] = list(hc.overrides.task)
    config["params"] = parts.params
    for logger in trainer.loggers:
        logger.log_hyperparams(config)
    offline = start_wandb_runs(trainer.loggers, announce=trainer.is_global_zero)

    parts.clock.start()
    diverged: TrainingDiverged | None = None
    try:
        with stop_on_sigterm(trainer, "training"):  # a SIGTERM: checkpoint saved, no results.json
            trainer.fit(parts.module, datamodule=parts.datamodule, ckpt_path=cfg.ckpt_path)
    except TrainingDiverged as exc:
        diverged = exc  # results.json says so (no test: nothing trustworthy to test), then exit non-zero
    fit_metrics = {k: to_number(v) for k, v in trainer.callback_metrics.items()}
    early = stopped_early(trainer)  # before test, which restores the callbacks' state of the best checkpoint
    best = selected_checkpoint(trainer)
    # A trial the search pruned is not tested: its fit was cut short, so a test compares with nothing.
    pruned = pruned_at_epoch(trainer)
    trial = trial_number(trainer)
    test_metrics = {}
    if diverged is None and pruned is None:
        with stop_on_sigterm(trainer, "testing"):
            test_metrics = trainer.test(parts.module, datamodule=parts.datamodule, ckpt_path=best)[0]
    ema = cfg.callbacks.get("ema")
    results = {
        **{k: v for k, v in fit_metrics.items() if k.startswith("val/")},
        **{k: to_number(v) for k, v in test_metrics.items()},
        "status": "diverged" if diverged is not None else "pruned" if pruned is not None else "completed",
        **({} if diverged is None else {"error": str(diverged), "diverged_at_step": diverged.step,
                                        "diverged_lr": diverged.lr}),
        **({} if trial is None else {"trial": trial}),
        **({} if pruned is None else {"pruned_at_epoch": pruned}),
        "params": parts.params, "depth": config["arch"]["depth"], "block_order": config["arch"].get("block_order"),
        **fit_records(trainer, run_dir, parts.speed, parts.train_flops),
        "wall_time_s": round(parts.clock.total_s(), 3),  # every segment of a resumed run
        **config["choices"], "overrides": config["overrides"], "seed": cfg.seed,
        "best_checkpoint": os.path.relpath(best, run_dir) if best else None,
        # The split that chose the tested checkpoint: "test" (data.val_on_test) makes test/* optimistic.
        "selected_on": selected_on(parts.datamodule, best) if test_metrics else None,
        "speed": parts.speed.as_dict(),
        "cpu_threads": torch.get_num_threads(),  # step times depend on it (a launched job: cpus_per_task)
        # The EMA callback's settings without Hydra's keys; null: off.
        "ema": None if ema is None else {k: v for k, v in OmegaConf.to_container(ema, resolve=True).items()
                                         if not k.startswith("_")},
        "stopped_early": early,
    }
    if trainer.is_global_zero:
        publish(run_dir, results, lambda: run_summary(results, run_dir, offline), curves=True)
    if diverged is not None:
        raise diverged
    return results


def publish(run_dir: Path, results: dict[str, Any], summary: Callable[[], str], curves: bool = False) -> None:
    """results.json into `run_dir` (where it is into the log), curves.png with `curves` (drawn from the
    results), then the `summary` block, printed as it is and kept in the job's log file too."""
    write_json_atomic(run_dir / RESULTS_FILE, results)
    log.info("results: %s", run_dir / RESULTS_FILE)
    try:  # a plotting problem never fails a finished run
        if curves and write_curves(run_dir) is None:
            log.info("no curves.png: the run logged no metrics (logger=none?)")
    except Exception as exc:
        log.warning("curves.png not written: %s: %s", type(exc).__name__, exc)
    block = summary()
    print(block, flush=True)
    log_to_files(block, __name__)


def evaluate_checkpoint(cfg: DictConfig, parts: Parts, run_dir: Path) -> dict[str, Any]:
    """Test the weights of `cfg.ckpt_path` and write results.json (status `evaluated`) into `run_dir`. Only the
    weights are loaded: Lightning's `test(ckpt_path=...)` would restore the training callbacks' states too."""
    trainer = parts.trainer
    parts.module.load_state_dict(readable_checkpoint(cfg.ckpt_path)["state_dict"])
    log.info("loaded the weights of %s", cfg.ckpt_path)
    with stop_on_sigterm(trainer, "testing"):
        metrics = trainer.test(parts.module, datamodule=parts.datamodule)[0]
    hc = HydraConfig.get()
    # The net that ran is the checkpoint's: name its run's arch, even where a typed arch= composed the
    # same net under another name (a recipe's arch keys).
    chosen = hc.runtime.choices.get("arch")
    arch = run_choices(Path(cfg.ckpt_path).parent.parent).get("arch") or chosen
    if arch != chosen:
        log.warning("arch=%s: the checkpoint comes from a run of arch=%s, whose net this is; results.json "
                    "names arch=%s", chosen, arch, arch)
    results = {**{k: to_number(v) for k, v in metrics.items()}, "status": "evaluated", "checkpoint": cfg.ckpt_path,
               "params": parts.params, "arch": arch, "depth": getattr(parts.model, "depth", None),
               "data": hc.runtime.choices.get("data"), "overrides": list(hc.overrides.task)}
    if trainer.is_global_zero:
        publish(run_dir, results, lambda: eval_summary(results, run_dir))
    return results
