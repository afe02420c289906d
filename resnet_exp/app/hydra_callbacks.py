"""Hydra callbacks (configured under `hydra.callbacks` in conf/hydra/default.yaml)."""

from __future__ import annotations

import sys
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict


class FinishWandbRun(Callback):
    """Finish the job's wandb run, marked failed if the job raised, so the next job starts its own."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        wandb = sys.modules.get("wandb")  # never import it just to find nothing to finish
        if wandb is not None and wandb.run is not None:
            wandb.finish(exit_code=0 if job_return.status == JobStatus.COMPLETED else 1)


class ValidateSweep(Callback):
    """Check every job of a multirun before the first one starts.

    Hydra composes each job up front, which catches unknown keys, options and types; the range
    checks of our schemas (`lr > 0`, ...) run only when a job starts, so a bad value in the last
    job of a long sweep would surface hours late. Glob sweeps are left to Hydra.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra import compose
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.hydra_config import HydraConfig
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from resnet_exp.app.cli import USER_ERROR_EXIT_CODE, describe_user_error
        from resnet_exp.config import validate

        hc = config.hydra
        params = [f"{k}={v}" for k, v in (hc.sweeper.get("params") or {}).items()]
        arguments = params + list(hc.overrides.task)
        if any("glob(" in argument for argument in arguments):
            return
        parsed = OverridesParser.create().parse_overrides(arguments)
        jobs = BasicSweeper.split_arguments(parsed, None)[0]
        try:
            for job in jobs:
                job_cfg = compose(config_name=hc.job.config_name, overrides=list(job),
                                  return_hydra_config=True)
                with open_dict(job_cfg):  # what Hydra fills in when the job really starts
                    job_cfg.hydra.runtime.output_dir = hc.sweep.dir
                    job_cfg.hydra.runtime.cwd = hc.runtime.cwd
                HydraConfig.instance().set_config(job_cfg)
                validate(job_cfg)
        except Exception as exc:
            message = describe_user_error(exc)
            if message is None:
                raise
            # Hydra turns exceptions raised in callbacks into warnings; only an exit stops it.
            print(f"error: {message}", file=sys.stderr)
            raise SystemExit(USER_ERROR_EXIT_CODE) from None
        finally:
            HydraConfig.instance().set_config(config)
