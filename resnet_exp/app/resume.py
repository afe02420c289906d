"""Continue an interrupted run in its own folder: `resume=<run dir>` or `ckpt_path=<file>`; or a
sweep in its own folder: `-m resume=<sweep dir>`.

Resuming re-runs the run's own command line (its `.hydra/overrides.yaml`, then whatever else
the user typed) in the same folder, from the checkpoint; the wandb logger picks up the folder's
existing wandb run id, so the run continues there too. A sweep re-runs its own command line (its
multirun.yaml), so the sweeper makes the same jobs into the same job folders, and each job
decides from its folder what is left to do (`resnet_exp.app.sweep_job`).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig

from resnet_exp.app.arguments import hydra_quoted, is_ddp_rank_relaunch, last_value
from resnet_exp.config import CONF_DIR
from resnet_exp.errors import UserError, first_line
from resnet_exp.io import (
    LAST_CHECKPOINT,
    is_run_dir,
    load_header,
    newest_loadable,
    read_results,
    readable_checkpoint,
    remove_temp_files,
)

RESUME_KEYS = ("resume", "ckpt_path")
MULTIRUN_FILE = "multirun.yaml"
# A sweep's own multirun.yaml, kept there when the sweep is first resumed: the sweeper rewrites
# multirun.yaml with the overrides typed for each resume, which apply to that resume only.
SWEEP_RECORD = Path(".hydra") / MULTIRUN_FILE
# Hydra overrides of a sweep that a resumed sweep sets itself.
SWEEP_OWN_KEYS = ("hydra.sweep.dir", "hydra.output_subdir", "hydra.mode")
EVAL_OWN_GROUPS = ("logger", "callbacks", "task_name")
# Settings of the run that would test only part of the test split: eval tests all of it unless the
# eval command line itself limits it.
EVAL_WHOLE_TEST_KEYS = ("trainer.limit_test_batches", "trainer.fast_dev_run")


def _key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def init_weights_argument(args: list[str]) -> list[str]:
    """`init_weights=<file>` as an absolute path, checked to be a readable checkpoint; refused
    next to `resume=`/`ckpt_path=`, which continue a run with all of its state."""
    value = last_value(args, "init_weights")
    if value in (None, "null"):
        return args
    typed = [k for k in RESUME_KEYS if last_value(args, k) not in (None, "null")]
    if typed:
        raise UserError(f"init_weights={value}: starts a new run from a checkpoint's weights alone; it cannot be "
                        f"combined with {typed[0]}=, which continues a run with its optimizer and schedule; "
                        "drop one of them")
    path = Path(value).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"init_weights={value}: no such file; pass a .ckpt file written by a run")
    readable_checkpoint(path, key="init_weights")
    # In place: Hydra reads overrides only before its own flags (--cfg job).
    return [f"init_weights={hydra_quoted(path)}" if _key(a) == "init_weights" else a for a in args]


def resume_arguments(args: list[str]) -> list[str]:
    """Command-line overrides with `resume=`/`ckpt_path=` (and `init_weights=`) expanded;
    unchanged without them."""
    args = init_weights_argument(args)
    resume, ckpt_path = last_value(args, "resume"), last_value(args, "ckpt_path")
    if resume in (None, "null") and ckpt_path in (None, "null"):
        return args
    if is_ddp_rank_relaunch(args):
        return args  # already expanded: Lightning's DDP re-runs this command for the other ranks
    if "-m" in args or "--multirun" in args:
        if resume in (None, "null"):
            raise UserError(f"ckpt_path={ckpt_path}: continues one run, not a sweep (-m); continue a sweep "
                            "with -m resume=<sweep dir>")
        return sweep_arguments(args, resume)
    if resume not in (None, "null"):
        run_dir = Path(resume).expanduser().resolve()
        if not is_run_dir(run_dir):
            raise UserError(f"resume={resume}: not a run folder (no .hydra/overrides.yaml there); "
                            "pass a folder under outputs/<task>/runs/")
        remove_temp_files(run_dir / LAST_CHECKPOINT.parent)
        checkpoint = newest_loadable(run_dir / LAST_CHECKPOINT.parent)
        if checkpoint is None:
            print(f"warning: resume={resume}: no loadable checkpoint (the run stopped before its "
                  "first one); starting it over in its folder", file=sys.stderr)
    else:
        checkpoint = Path(ckpt_path).expanduser().resolve()
        if not checkpoint.is_file():
            raise UserError(f"ckpt_path={ckpt_path}: no such file")
        readable_checkpoint(checkpoint)
        run_dir = checkpoint.parent.parent
        if not is_run_dir(run_dir):  # a checkpoint from elsewhere: a new run starts from it
            return [a for a in args if not a.startswith("ckpt_path=")] + [f"ckpt_path={hydra_quoted(checkpoint)}"]
    typed_dir = last_value(args, "hydra.run.dir")
    if typed_dir is not None and Path(typed_dir).expanduser().resolve() != run_dir:
        key = "resume" if resume not in (None, "null") else "ckpt_path"
        raise UserError(f"hydra.run.dir={typed_dir}: {key}= continues the run in its own folder "
                        f"{run_dir}; drop hydra.run.dir (or start a new run from the checkpoint "
                        "by copying it out of the run folder)")
    typed = [a for a in args if not a.startswith(tuple(f"{k}=" for k in (*RESUME_KEYS, "hydra.run.dir")))]
    saved = still_apply(saved_overrides(run_dir), typed)
    return [*saved, *typed, f"resume={hydra_quoted(run_dir)}",
            f"ckpt_path={hydra_quoted(checkpoint) if checkpoint else 'null'}",
            f"hydra.run.dir={hydra_quoted(run_dir)}", f"hydra.output_subdir={resumed_record()}"]


def resumed_record() -> str:
    """Where a resumed job's Hydra record goes: a subfolder of `.hydra/`, so that the job's own
    record (its overrides) stays intact for the next resume, even if this one fails."""
    return time.strftime(f".hydra/resumed-%Y-%m-%d_%H-%M-%S-{os.getpid()}")


def sweep_arguments(args: list[str], resume: str) -> list[str]:
    """`-m resume=<sweep dir>` expanded: the sweep's own overrides (task and Hydra's, from its
    multirun.yaml) that the typed ones leave standing, then the typed ones, in the sweep's folder."""
    sweep = Path(resume).expanduser().resolve()
    if not (sweep / MULTIRUN_FILE).is_file():
        hint = "resume a run without -m" if is_run_dir(sweep) else "pass a folder under outputs/<task>/multiruns/"
        raise UserError(f"resume={resume}: not a sweep folder (no {MULTIRUN_FILE} there); {hint}")
    typed_dir = last_value(args, "hydra.sweep.dir")
    if typed_dir is not None and Path(typed_dir).expanduser().resolve() != sweep:
        raise UserError(f"hydra.sweep.dir={typed_dir}: resume= continues the sweep in its own folder {sweep}; "
                        "drop hydra.sweep.dir")
    task, hydra, _ = saved_sweep(sweep)
    flags = [a for a in args if a.startswith("-")]  # after every override: Hydra reads them in one run
    typed = [a for a in args if a not in flags and _key(a) not in ("resume", "hydra.sweep.dir")]
    saved = still_apply([*task, *(o for o in hydra if _key(o) not in SWEEP_OWN_KEYS)], typed)
    return [*saved, *typed, f"hydra.sweep.dir={hydra_quoted(sweep)}", f"hydra.output_subdir={resumed_record()}",
            *flags]


def saved_sweep(sweep: Path) -> tuple[list[str], list[str], list[str]]:
    """A sweep's command line from its own multirun.yaml: (task overrides, Hydra overrides, the
    recipe's hydra.sweeper.params as overrides); a damaged file is a one-line UserError."""
    path = sweep / SWEEP_RECORD if (sweep / SWEEP_RECORD).is_file() else sweep / MULTIRUN_FILE
    try:
        saved = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserError(f"{path}: cannot read the sweep's command line ({first_line(exc)}); restore the file, "
                        "or start a new sweep") from None

    def node(*keys: str) -> Any:
        found = saved
        for key in keys:
            found = found.get(key) if isinstance(found, dict) else None
        return found

    task, hydra, params = (node("hydra", "overrides", "task"), node("hydra", "overrides", "hydra"),
                           node("hydra", "sweeper", "params"))
    if not (isinstance(task, list) and isinstance(hydra, list) and all(isinstance(o, str) for o in task + hydra)):
        raise UserError(f"{path}: damaged (expected hydra.overrides.task and .hydra, lists of overrides); "
                        "restore the file, or start a new sweep")
    return task, hydra, [f"{k}={v}" for k, v in (params if isinstance(params, dict) else {}).items()]


def keep_sweep_record(sweep: Path) -> None:
    """Keep a resumed sweep's own multirun.yaml (see SWEEP_RECORD) before its sweeper rewrites it."""
    if (sweep / MULTIRUN_FILE).is_file() and not (sweep / SWEEP_RECORD).is_file():
        (sweep / SWEEP_RECORD).parent.mkdir(exist_ok=True)
        shutil.copy2(sweep / MULTIRUN_FILE, sweep / SWEEP_RECORD)


def sweep_jobs(params: list[str], task: list[str]) -> tuple[list[list[str]], set[str]]:
    """The jobs Hydra's basic sweeper makes of a recipe's `hydra.sweeper.params` and the command
    line's overrides, in its order, and the keys they sweep."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([*params, *task])
    jobs = [list(job) for job in BasicSweeper.split_arguments(parsed, None)[0]]
    return jobs, {o.get_key_element() for o in parsed if o.is_sweep_override()}


def check_same_jobs(sweep: Path, params: list[str], task: list[str]) -> None:
    """A resumed sweep (its folder holds multirun.yaml) must make the jobs it made before, in the
    same order, so that each job finds its own folder: one line names an override that changes them."""
    if not (sweep / MULTIRUN_FILE).is_file():
        return
    saved_task, _, saved_params = saved_sweep(sweep)
    (before, axes_before), (now, axes_now) = sweep_jobs(saved_params, saved_task), sweep_jobs(params, task)
    axes = axes_before | axes_now

    def swept(jobs: list[list[str]]) -> list[list[str]]:
        return [[o for o in job if o.split("=", 1)[0] in axes] for job in jobs]

    if swept(before) == swept(now):
        return
    keys = {_key(a) for a in axes}
    changed = next((o for o in task if o not in saved_task and any(k == _key(o) or k.startswith(f"{_key(o)}.")
                                                                    for k in keys)), None)
    sweeps = " ".join(o for o in saved_task if o.split("=", 1)[0] in axes_before) or "its recipe's params"
    raise UserError(f"{changed or f'resume={sweep}'}: changes the jobs of the sweep it resumes ({len(before)} jobs "
                    f"over {sweeps}); a resumed sweep runs its own jobs: type only keys it does not sweep, "
                    "or start a new sweep")


def still_apply(saved: list[str], typed: list[str]) -> list[str]:
    """The run's saved overrides that the typed ones leave standing: a typed key replaces the saved
    one, and a typed group choice (`data=cifar10`) drops the saved keys of that group's old option
    (`data.image_size=16` belonged to it)."""
    replaced = {_key(a) for a in typed}
    groups = {key for key in replaced if (CONF_DIR / key).is_dir()}
    return [o for o in saved if _key(o) not in replaced and _key(o).split(".", 1)[0] not in groups]


def saved_overrides(run_dir: Path) -> list[str]:
    """The command-line overrides a run was started with (its .hydra/overrides.yaml, a YAML list
    of strings, `[]` for none), less resume/ckpt_path; a damaged file is a one-line UserError."""
    path = run_dir / ".hydra" / "overrides.yaml"
    try:
        text = path.read_text()
        saved = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserError(f"{path}: cannot read the run's command line ({first_line(exc)}); "
                        "restore the file, or start a new run") from None
    if not text.strip() or not isinstance(saved, list) or not all(isinstance(o, str) for o in saved):
        raise UserError(f"{path}: damaged (expected a YAML list of overrides such as [arch=resnet20], "
                        "or [] for none); restore the file, or start a new run")
    return [o for o in saved if not o.startswith(tuple(f"{k}=" for k in RESUME_KEYS))]


def eval_arguments(args: list[str]) -> list[str]:
    """For `eval`: the checkpoint's run's own overrides first (same arch and data), then the user's."""
    ckpt_path = last_value(args, "ckpt_path")
    if ckpt_path in (None, "null") and {"--help", "-h", "--hydra-help"} & set(args):
        return args  # help needs no checkpoint
    if ckpt_path in (None, "null"):
        raise UserError("ckpt_path: required; evaluate a checkpoint with ckpt_path=<file>")
    if last_value(args, "init_weights") not in (None, "null"):
        raise UserError("init_weights: not for eval, which tests the weights of ckpt_path=<file>; drop init_weights")
    checkpoint = Path(ckpt_path).expanduser().resolve()
    if not checkpoint.is_file():
        raise UserError(f"ckpt_path={ckpt_path}: no such file")
    readable_checkpoint(checkpoint)
    run_dir = checkpoint.parent.parent
    # The run's loggers and callbacks are training's; conf/eval.yaml chooses its own.
    own = [o for o in (saved_overrides(run_dir) if is_run_dir(run_dir) else [])
           if not _key(o).startswith(EVAL_OWN_GROUPS) and _key(o) not in EVAL_WHOLE_TEST_KEYS]
    own = still_apply(own, [a for a in args if not a.startswith("ckpt_path=")])
    typed = [a for a in args if not a.startswith("ckpt_path=")]
    return [*own, *typed, f"ckpt_path={hydra_quoted(checkpoint)}"]


def check_resume_length(cfg: DictConfig) -> None:
    """Refuse, in one line, a resume whose checkpoint is already at or past the run's end:
    a finished run (results.json says completed) would be tested again and its results.json
    rewritten without the validation figures, and a checkpoint beyond a lowered trainer.max_epochs
    fails inside Lightning. Extending a run (a larger trainer.max_epochs) is not refused, unless
    early stopping ended it: that run is finished whatever its length."""
    if cfg.get("resume") in (None, "null") or cfg.get("ckpt_path") in (None, "null"):
        return
    run_dir = Path(str(cfg.resume))
    try:
        results = read_results(run_dir)
        finished, stopped = results.get("status") == "completed", results.get("stopped_early")
    except (OSError, ValueError, AttributeError):
        finished, stopped = False, None  # no (readable) results.json: the run never finished
    if finished and isinstance(stopped, dict):
        epoch = stopped.get("epoch")  # 0-based, as Lightning counts
        raise UserError(f"resume={run_dir}: the run is finished (early stopping ended it after "
                        f"{epoch + 1 if isinstance(epoch, int) else '?'} epochs: {stopped.get('reason')}) and "
                        "stays as it is; to train on, start a new run from a copy of its checkpoint (ckpt_path=<copy>)")
    saved = load_header(cfg.ckpt_path)
    epochs, steps = int(saved["epoch"]) + 1, int(saved["global_step"])
    max_epochs, max_steps = cfg.trainer.get("max_epochs"), cfg.trainer.get("max_steps", -1)
    if finished and max_steps not in (None, -1) and steps >= max_steps:
        raise UserError(f"resume={run_dir}: the run is finished ({steps} of trainer.max_steps={max_steps} "
                        f"steps) and stays as it is; to train it longer add trainer.max_steps=N with N > {steps}")
    if max_epochs in (None, -1):
        return
    if finished and epochs >= max_epochs:
        raise UserError(f"resume={run_dir}: the run is finished ({epochs} of trainer.max_epochs={max_epochs} "
                        f"epochs) and stays as it is; to train it longer add trainer.max_epochs=N with N > {epochs}")
    if epochs > max_epochs:
        raise UserError(f"trainer.max_epochs={max_epochs}: the checkpoint of resume={run_dir} has reached "
                        f"epoch {epochs} already; resume with trainer.max_epochs >= {epochs}")
