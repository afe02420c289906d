"""Evaluate a checkpoint on the test split: `python -m resnet_exp.eval ckpt_path=<file> [overrides]`. A checkpoint
in a run folder is rebuilt with that run's overrides, then the command's; results.json goes under outputs/eval/."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from resnet_exp.app.cli import route_lightning_logs_to_hydra, run_hydra_app
from resnet_exp.app.resume import eval_arguments
from resnet_exp.app.run_dir import RunFolder
from resnet_exp.config import CONF_DIR, register_schemas, validate
from resnet_exp.pipeline import build_parts, evaluate_checkpoint


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def evaluate(cfg: DictConfig) -> float:
    route_lightning_logs_to_hydra()
    with RunFolder() as folder:
        validate(cfg)
        parts = build_parts(cfg)
        folder.set_up()
        return float(evaluate_checkpoint(cfg, parts, folder.path)["test/acc"])


def main() -> None:
    register_schemas()
    run_hydra_app(evaluate, expand_args=eval_arguments)


if __name__ == "__main__":
    main()
