"""OmegaConf resolvers that name runs from what the user chose (usable in any config value)."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import OmegaConf

# Overrides that say where or how a run happens, not what it is: left out of run names.
NAME_SKIP_PREFIXES = ("hydra.", "logger.", "paths.", "callbacks.", "data.data_dir", "data.num_workers", "data.loader",
                      "trainer.devices", "trainer.accelerator", "trainer.num_nodes", "trainer.strategy", "resume",
                      "ckpt_path", "init_weights")


def sweep_axes() -> set[str]:
    """Keys a multirun sweeps over (command line and `hydra.sweeper.params`); empty otherwise."""
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return set()
    # The job's own overrides are already expanded; the sweep's are saved before any job starts.
    saved = Path(hc.sweep.dir) / "multirun.yaml"
    command_line = list(OmegaConf.load(saved).hydra.overrides.task) if saved.is_file() else []
    params = [f"{k}={v}" for k, v in (hc.sweeper.get("params") or {}).items()]
    parsed = OverridesParser.create().parse_overrides(command_line + params)
    return {o.key_or_group for o in parsed if o.is_sweep_override()}


def short_value(value: str) -> str:
    """A float as 3 significant digits (0.08923418089348906 -> 0.0892); anything else as it is."""
    if not re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][-+]?\d+)", value):
        return value
    return f"{float(value):.3g}"


def _task_values(keep: Callable[[str], bool]) -> list[str]:
    """The values of the job's overrides whose key `keep` accepts, in order."""
    pairs = (override.lstrip("+~").partition("=") for override in HydraConfig.get().overrides.task)
    return [value for key, _, value in pairs if keep(key)]


def _as_name(parts: list[str], length: int) -> str:
    """`parts` joined by "-" as a folder-safe name (other characters become "_") of at most `length`."""
    return re.sub(r"[^A-Za-z0-9._,+=-]+", "_", "-".join(parts)).strip("_")[:length]


def run_name() -> str:
    """The job's overrides as a short name (`arch=resnet34 arch.block_order=pre` -> resnet34-pre); in a multirun
    only the swept keys count, so jobs are told apart by what differs. Floats are cut by `short_value`."""
    axes = sweep_axes()
    values = _task_values(lambda key: key in axes if axes else not key.startswith(NAME_SKIP_PREFIXES))
    return _as_name([short_value(v) for v in values], 120) or "default"


def sweep_name() -> str | None:
    """`<task_name>-<sweep folder>` in a multirun (one wandb group per sweep), `<task_name>-<study>`
    in a search (one group for every process of a shared study), else None."""
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None
    return f"{hc.job.name}-{hc.sweeper.get('study_name') or Path(hc.sweep.dir).name}"


def seed_group() -> str | None:
    """The wandb group of a job: in a multirun that sweeps `seed`, `<sweep name>-<the job's other swept values>`
    (run-2026-12-05_10-00-00-8-pre), so that jobs differing only in seed share a group and the dashboard shows
    their mean and spread; in any other multirun the sweep name; None in a single run."""
    name, axes = sweep_name(), sweep_axes()
    if name is None or "seed" not in axes:
        return name
    return _as_name([name, *_task_values(lambda key: key in axes and key != "seed")], 128)  # wandb's longest


def launch_dir() -> str:
    """The folder the command was started in: Hydra's `runtime.cwd` inside a job, the working directory (the same
    folder: `hydra.job.chdir: false`) before any job exists, when a multirun's sweep folder is resolved."""
    return str(HydraConfig.get().runtime.cwd) if HydraConfig.initialized() else os.getcwd()


def existing_wandb_id(output_dir: str | None) -> str | None:
    """The id of the newest wandb run already in this run folder, so a resumed run continues it."""
    if output_dir is None:  # composing without running (--cfg job)
        return None
    runs = sorted(Path(output_dir, "wandb").glob("*run-*-*"), key=lambda p: p.stat().st_mtime)
    return runs[-1].name.rsplit("-", 1)[1] if runs else None


def ddp_strategy() -> str:
    """`ddp` for a single run and for SLURM jobs (SLURM starts one task per rank); `ddp_spawn` in
    other multiruns, where `ddp` would re-run the whole sweep for each rank."""
    hc = HydraConfig.get()
    on_slurm = "SlurmLauncher" in str(hc.launcher.get("_target_", ""))
    return "ddp_spawn" if hc.mode == RunMode.MULTIRUN and not on_slurm else "ddp"


def app_config_groups() -> str:
    """For `--help`: the config groups the entry point's primary config chooses (not the `schema/*` groups
    the YAML files extend, nor another entry point's), with their options in conf/ and the default, plus
    hydra/launcher."""
    runtime = HydraConfig.get().runtime
    # The primary config's own folder (conf/), as Hydra found it.
    conf_dir = next(Path(s.path) for s in runtime.config_sources if s.provider == "main" and s.schema == "file")
    choices = runtime.choices
    lines = []
    for group in sorted(g for g in choices if not g.startswith("hydra")) + ["hydra/launcher"]:
        # basic: Hydra's own launcher, jobs one after the other in this process
        options = ["basic"] * (group == "hydra/launcher") + sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))
        default = choices.get(group)
        lines.append(f"{group}: {', '.join(options)}" + (f"  (default: {default})" if default else ""))
    return "\n".join(lines)


def register_resolvers() -> None:
    for resolver in (run_name, sweep_name, seed_group, launch_dir, existing_wandb_id, ddp_strategy, app_config_groups):
        OmegaConf.register_new_resolver(resolver.__name__, resolver, replace=True)
    small = {
        # `sweep=<sweep name>` in a multirun, so every run of a sweep is found by one tag; else None (dropped)
        "sweep_tag": lambda: None if sweep_name() is None else f"sweep={sweep_name()}",
        # `value` if it is a whole number (e.g. trainer.devices=4), else `default` (e.g. for auto)
        "int_or": lambda value, default: int(value) if str(value).isdigit() else default,
        # DataLoader workers: `at_most`, but no more than the cores this process may use
        "cpu_workers": lambda at_most: max(0, min(int(at_most), len(os.sched_getaffinity(0)))),
        # `fraction` of `total` steps, rounded down (recipe milestones that follow trainer.max_steps)
        "scaled_steps": lambda total, fraction: int(int(total) * float(fraction)),
        # `then` if `value` >= `threshold` (e.g. a warm-up only for deep nets), else `otherwise`
        "if_at_least": lambda value, threshold, then, otherwise: (
            then if value is not None and int(value) >= int(threshold) else otherwise),
    }
    for name, resolver in small.items():
        OmegaConf.register_new_resolver(name, resolver, replace=True)
    # Six random hex digits that tell apart folders of runs started in the same second; cached like Hydra's
    # `now`, so a run's folder is the same every time `hydra.run.dir` is read.
    OmegaConf.register_new_resolver("unique_suffix", lambda: secrets.token_hex(3), use_cache=True, replace=True)
