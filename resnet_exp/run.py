"""Train, then test, one configuration: `python -m resnet_exp.run [overrides]`; the work is in `pipeline`."""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from resnet_exp.app.cli import route_lightning_logs_to_hydra, run_hydra_app
from resnet_exp.app.resume import check_resume_length, resume_arguments
from resnet_exp.app.signals import say_how_to_continue
from resnet_exp.app.sweep_job import job_folder, saved_metric
from resnet_exp.config import CONF_DIR, register_schemas, validate
from resnet_exp.pipeline import build_parts, check_resume_fits, fit_and_test
from resnet_exp.search.pruning import TrialPruning, trial_of_job


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def train(cfg: DictConfig) -> float | None:
    route_lightning_logs_to_hydra()
    with job_folder(cfg) as folder:
        if folder is None:  # a job of a resumed sweep that has finished, or that another process runs
            return saved_metric(cfg)
        with say_how_to_continue(folder):
            validate(cfg)
            trial = trial_of_job(HydraConfig.get().sweeper)  # None unless a search launched this job
            parts = build_parts(cfg, extra_callbacks=[TrialPruning(trial)] if trial else [])
            check_resume_fits(cfg, parts)
            check_resume_length(cfg)
            folder.set_up()
            results = fit_and_test(cfg, parts, folder.path)
    return saved_metric(cfg, results)


def main() -> None:
    register_schemas()
    run_hydra_app(train, expand_args=resume_arguments)


if __name__ == "__main__":
    main()
