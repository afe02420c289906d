"""Command-line overrides as the user typed them, read and written the way Hydra's parser does, and
the jobs a sweep of them makes."""

from __future__ import annotations

import re

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from resnet_exp.errors import UserError

# Lightning's DDP launcher re-runs the (expanded) command line for ranks > 0 with this added.
DDP_RANK_MARK = "hydra.job.name=train_ddp_process_"


def is_ddp_rank_relaunch(args: list[str]) -> bool:
    """Whether this process is a DDP rank > 0 that Lightning started by re-running the command: its
    run folder is rank 0's, made a moment ago by the same command."""
    return any(a.startswith(DDP_RANK_MARK) for a in args)


def typed_value(override: str) -> str | None:
    """The value of one `key=value` override, unquoted as Hydra reads it; a value Hydra cannot
    parse (a path with a space or a non-ASCII letter typed without quotes) is taken as typed."""
    key, _, raw = override.partition("=")
    try:
        value = OverridesParser.create().parse_override(f"{key}={raw}").value()
    except Exception:  # not Hydra syntax: the raw text is what was meant
        return raw
    return None if value is None else str(value)


def last_value(args: list[str], key: str) -> str | None:
    """The value of the last `key=...` (or `+key=...`) among `args`, unquoted; None if absent."""
    found = [a for a in args if a.lstrip("+").startswith(f"{key}=")]
    return typed_value(found[-1].lstrip("+")) if found else None


def hydra_quoted(value: object) -> str:
    """`value` as a quoted Hydra override value: any path (spaces, commas, quotes, non-ASCII
    letters) reads back as itself. Backslashes are literal except before a quote."""
    text = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", str(value))
    text = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, text)
    return f"'{text}'"


def sweep_jobs(sweeper: DictConfig, arguments: list[str]) -> list[list[str]] | None:
    """The overrides of the jobs to check before a sweep starts: every job of Hydra's basic sweeper;
    for a search, every choice and both ends of every range, one key at a time (its jobs are not
    known before Optuna proposes them); None for glob sweeps (left to Hydra)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = {str(k): v for k, v in (sweeper.get("params") or {}).items()}
    if any("glob(" in str(argument) for argument in [*params.values(), *arguments]):
        return None
    if not str(sweeper.get("_target_", "")).endswith(".BasicSweeper"):
        from resnet_exp.search.space import probe_jobs, search_space

        return probe_jobs(search_space(params, arguments))
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()] + arguments)
    for override in parsed:
        if override.is_sweep_override() and not override.is_discrete_sweep():
            raise UserError(f"{override.input_line}: Hydra's basic sweeper runs lists, choice() and range(); "
                            "interval() and tag() need a search: add hparams_search=lr_wd (or hydra/sweeper=optuna)")
    return [list(job) for job in BasicSweeper.split_arguments(parsed, None)[0]]
