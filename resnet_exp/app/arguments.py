"""Command-line overrides as typed, read and written the way Hydra's parser does, and the jobs a sweep makes."""

from __future__ import annotations

import re

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from resnet_exp.errors import UserError

DDP_RANK_MARK = "hydra.job.name=train_ddp_process_"  # added to the command line Lightning's DDP re-runs
RESUME_KEYS = ("resume", "ckpt_path")  # they continue a run in its own folder


def is_ddp_rank_relaunch(args: list[str]) -> bool:
    """Whether this process is a DDP rank > 0 that Lightning started by re-running the command (in rank 0's folder)."""
    return any(a.startswith(DDP_RANK_MARK) for a in args)


def key_of(override: str) -> str:
    """The key of an override, without `+`, `++` or `~`."""
    return override.lstrip("+~").split("=", 1)[0]


def typed_value(override: str) -> str | None:
    """The value of a `key=value` override, unquoted as Hydra reads it, or as typed where Hydra cannot parse it."""
    try:
        value = OverridesParser.create().parse_override(override).value()
    except Exception:  # not Hydra syntax: the raw text is what was meant
        return override.partition("=")[2]
    return None if value is None else str(value)


def last_value(args: list[str], key: str, null: bool = True) -> str | None:
    """The unquoted value of the last `key=` or `+key=` among `args`; None if absent (or null, with `null=False`)."""
    found = [a for a in args if a.lstrip("+").startswith(f"{key}=")]
    value = typed_value(found[-1].lstrip("+")) if found else None
    return None if value == "null" and not null else value


def hydra_quoted(value: object) -> str:
    """`value` quoted for a Hydra override, to read back as itself (backslashes literal except before a quote)."""
    text = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", str(value))
    text = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, text)
    return f"'{text}'"


def basic_jobs(overrides: list[str], check: bool = False) -> tuple[list[list[str]], set[str]]:
    """The jobs Hydra's basic sweeper makes of `overrides`, in order, and the keys they sweep (`check`: no ranges)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    for override in parsed if check else ():
        if override.is_sweep_override() and not override.is_discrete_sweep():
            raise UserError(f"{override.input_line}: Hydra's basic sweeper runs lists, choice() and range(); "
                            "interval() and tag() need a search: add hparams_search=lr_wd (or hydra/sweeper=optuna)")
    jobs = [list(job) for job in BasicSweeper.split_arguments(parsed, None)[0]]
    return jobs, {o.get_key_element() for o in parsed if o.is_sweep_override()}


def sweep_jobs(sweeper: DictConfig, arguments: list[str]) -> list[list[str]] | None:
    """The overrides of the jobs to check before a sweep starts: every job of Hydra's basic sweeper; for a search,
    every choice and both ends of every range, one key at a time (Optuna proposes its jobs); None for glob sweeps."""
    params = {str(k): v for k, v in (sweeper.get("params") or {}).items()}
    if any("glob(" in str(argument) for argument in [*params.values(), *arguments]):
        return None
    if not str(sweeper.get("_target_", "")).endswith(".BasicSweeper"):
        from resnet_exp.search.space import probe_jobs, search_space

        return probe_jobs(search_space(params, arguments))
    return basic_jobs([f"{k}={v}" for k, v in params.items()] + arguments, check=True)[0]
