"""Evaluate a checkpoint on the test split: `python -m resnet_exp.eval ckpt_path=<file>`.

A checkpoint inside a run folder is rebuilt with that run's overrides (arch, data, ...); further
overrides (e.g. `data.eval_batch_size=512`) follow. Writes results.json into its own run folder
under outputs/eval/.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from resnet_exp.cli import CONF_DIR, discard_run_dir_on_error, route_lightning_logs_to_hydra, run_hydra_app
from resnet_exp.config import register_schemas, validate
from resnet_exp.results import RESULTS_FILE, to_number, write_json_atomic
from resnet_exp.resume import eval_arguments
from resnet_exp.run import build_parts

log = logging.getLogger(__name__)
# Evaluation keeps the console parts of the training callbacks and logs nowhere else.
EVAL_CALLBACKS = ("model_summary", "progress_bar")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def evaluate(cfg: DictConfig) -> float:
    route_lightning_logs_to_hydra()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    with discard_run_dir_on_error():
        validate(cfg)
        with open_dict(cfg):
            cfg.logger = {}
            cfg.callbacks = {k: v for k, v in cfg.callbacks.items() if k in EVAL_CALLBACKS}
        parts = build_parts(cfg)
    trainer = parts["trainer"]
    metrics = trainer.test(parts["module"], datamodule=parts["datamodule"], ckpt_path=cfg.ckpt_path)[0]
    choices = HydraConfig.get().runtime.choices
    results = {
        **{k: to_number(v) for k, v in metrics.items()},
        "status": "evaluated",
        "checkpoint": cfg.ckpt_path,
        "params": sum(p.numel() for p in parts["model"].parameters()),
        "arch": choices.get("arch"),
        "data": choices.get("data"),
        "overrides": list(HydraConfig.get().overrides.task),
    }
    if trainer.is_global_zero:
        write_json_atomic(run_dir / RESULTS_FILE, results)
        log.info("results: %s", run_dir / RESULTS_FILE)
    return float(results["test/acc"])


def main() -> None:
    register_schemas()
    run_hydra_app(evaluate, expand_args=eval_arguments)


if __name__ == "__main__":
    main()
