"""Build the parts of a run from a composed config, train, test and write results.json.

The entry points (`run`, `eval`) and the benchmark harness call these; nothing here parses
arguments. Each part is built with `hydra.utils.instantiate` from its config group.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from resnet_exp import speed
from resnet_exp.callbacks import step_time_summary
from resnet_exp.callbacks.loggers import define_wandb_summaries, report_offline_runs
from resnet_exp.checkpoints import LAST_CHECKPOINT, check_checkpoint_fits, load_header
from resnet_exp.data import ImageDataModule
from resnet_exp.module import ImageClassifier
from resnet_exp.report.curves import write_curves
from resnet_exp.report.summary import eval_summary, run_summary
from resnet_exp.results import RESULTS_FILE, to_number, write_json_atomic

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

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def is_local_rank_zero() -> bool:
    """First process on this node: Lightning's own ranks, or SLURM's tasks (submitit)."""
    return int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0"))) == 0


def build_parts(cfg: DictConfig) -> Parts:
    """Datamodule (with data checked), model, LightningModule, loggers and trainer."""
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    if is_local_rank_zero():
        datamodule.prepare_data()  # fail on missing data before any logger or trainer starts
    model = instantiate(
        cfg.arch,
        num_classes=datamodule.num_classes,
        in_channels=datamodule.in_channels,
        input_size=datamodule.image_size,
    )
    fast = speed.plan(cfg.trainer, cfg.speed)  # fast GPU path: nulls resolved for this machine
    log.info("speed: %s", fast)
    fast.apply_backend()
    model = fast.prepare_model(model)
    schedule = cfg.scheduler
    module = instantiate(
        cfg.module,
        model=model,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(schedule.lr_scheduler) if schedule.lr_scheduler else None,
        scheduler_interval=schedule.interval.value,
        scheduler_frequency=schedule.frequency,
        num_classes=datamodule.num_classes,
        # No example forward under torch.compile: it would compile an extra graph for batch 1.
        example_input_shape=None if fast.compile else datamodule.example_input_shape,
    )
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if c]
    loggers = [lg for lg in (instantiate(c) for c in cfg.logger.values() if c) if lg is not None]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **fast.trainer_kwargs())
    if cfg.ckpt_path:
        check_checkpoint_fits(cfg.ckpt_path, module.state_dict(), HydraConfig.get().runtime.choices.arch)
    return Parts(datamodule=datamodule, model=model, module=module, trainer=trainer, speed=fast)


def logged_config(cfg: DictConfig, model: nn.Module, params: int) -> dict[str, Any]:
    """The resolved config as loggers should see it, plus what the config alone cannot say."""
    hc = HydraConfig.get()
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    # Named presets leave arch.depth empty; dashboards group by it, so record the built depth.
    config["arch"]["depth"] = getattr(model, "depth", config["arch"].get("depth"))
    config["choices"] = {group: hc.runtime.choices.get(group) for group in CHOICE_GROUPS}
    config["overrides"] = list(hc.overrides.task)
    config["params"] = params
    return config


def training_progress(trainer: pl.Trainer, run_dir: Path) -> dict[str, int]:
    """Epochs completed and optimizer steps taken. Under ddp_spawn the fit ran in other
    processes and this trainer never advanced; the last checkpoint knows."""
    last = run_dir / LAST_CHECKPOINT
    if trainer.global_step == 0 and last.is_file():
        saved = load_header(last)
        return {"epochs": saved["epoch"] + 1, "steps": saved["global_step"]}
    return {"epochs": trainer.current_epoch, "steps": trainer.global_step}


def fit_and_test(cfg: DictConfig, parts: Parts, run_dir: Path) -> dict[str, Any]:
    """Train, test the best checkpoint, and write results.json (rank zero) into `run_dir`."""
    trainer = parts.trainer
    params = parts.params
    config = logged_config(cfg, parts.model, params)
    for logger in trainer.loggers:
        logger.log_hyperparams(config)
    define_wandb_summaries(trainer.loggers)

    started = time.perf_counter()
    trainer.fit(parts.module, datamodule=parts.datamodule, ckpt_path=cfg.ckpt_path)
    fit_metrics = {k: to_number(v) for k, v in trainer.callback_metrics.items()}
    best = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
    test_metrics = trainer.test(parts.module, datamodule=parts.datamodule, ckpt_path=best or None)[0]
    wall_time_s = time.perf_counter() - started

    results = {
        **{k: v for k, v in fit_metrics.items() if k.startswith("val/")},
        **{k: to_number(v) for k, v in test_metrics.items()},
        "status": "completed",
        "params": params,
        "depth": config["arch"]["depth"],
        "block_order": config["arch"].get("block_order"),
        **training_progress(trainer, run_dir),
        "wall_time_s": round(wall_time_s, 3),
        **config["choices"],
        "overrides": config["overrides"],
        "seed": cfg.seed,
        "best_checkpoint": os.path.relpath(best, run_dir) if best else None,
        "step_time": step_time_summary(trainer),
        "speed": parts.speed.as_dict(),
    }
    if trainer.is_global_zero:
        write_json_atomic(run_dir / RESULTS_FILE, results)
        log.info("results: %s", run_dir / RESULTS_FILE)
        offline = report_offline_runs(trainer.loggers)
        draw_curves(run_dir)
        print(run_summary(results, run_dir, offline), flush=True)
    return results


def draw_curves(run_dir: Path) -> None:
    """curves.png in the run folder; a plotting problem never fails a finished run."""
    try:
        if write_curves(run_dir) is None:
            log.info("no curves.png: the run logged no metrics (logger=none?)")
    except Exception as exc:
        log.warning("curves.png not written: %s: %s", type(exc).__name__, exc)


def evaluate_checkpoint(cfg: DictConfig, parts: Parts, run_dir: Path) -> dict[str, Any]:
    """Test `cfg.ckpt_path` and write results.json (status `evaluated`) into `run_dir`."""
    trainer = parts.trainer
    metrics = trainer.test(parts.module, datamodule=parts.datamodule, ckpt_path=cfg.ckpt_path)[0]
    hc = HydraConfig.get()
    results = {
        **{k: to_number(v) for k, v in metrics.items()},
        "status": "evaluated",
        "checkpoint": cfg.ckpt_path,
        "params": parts.params,
        "arch": hc.runtime.choices.get("arch"),
        "data": hc.runtime.choices.get("data"),
        "overrides": list(hc.overrides.task),
    }
    if trainer.is_global_zero:
        write_json_atomic(run_dir / RESULTS_FILE, results)
        log.info("results: %s", run_dir / RESULTS_FILE)
        print(eval_summary(results, run_dir), flush=True)
    return results
