"""Continue a run (`resume=<run dir>`, `ckpt_path=<file>`) or a sweep (`-m resume=<sweep dir>`) in its own folder:
its own command line (`.hydra/overrides.yaml`, multirun.yaml), then the typed one; each job: `app.sweep_job`."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig

from resnet_exp.app.arguments import RESUME_KEYS, basic_jobs, hydra_quoted, is_ddp_rank_relaunch, key_of, last_value
from resnet_exp.config import CONF_DIR
from resnet_exp.errors import UserError, first_line
from resnet_exp.io import LAST_CHECKPOINT, is_run_dir, load_header, newest_loadable, read_results, readable_checkpoint

MULTIRUN_FILE = "multirun.yaml"
SWEEP_RECORD = Path(".hydra") / MULTIRUN_FILE  # the sweep's own, kept: the sweeper rewrites it for each resume
SWEEP_OWN_KEYS = ("hydra.sweep.dir", "hydra.output_subdir", "hydra.mode")  # a resumed sweep sets them itself
EVAL_OWN_GROUPS = ("logger", "callbacks", "task_name")
EVAL_WHOLE_TEST_KEYS = ("trainer.limit_test_batches", "trainer.fast_dev_run")  # eval tests the whole split


def _checkpoint(value: str, key: str = "ckpt_path", hint: str = "") -> Path:
    """`key=<file>` resolved, checked to be a readable checkpoint."""
    path = Path(value).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"{key}={value}: no such file{hint}")
    readable_checkpoint(path, key=key)
    return path


def resume_arguments(args: list[str]) -> list[str]:
    """Command-line overrides with `resume=`/`ckpt_path=` expanded and `init_weights=` checked; else unchanged."""
    if (weights := last_value(args, "init_weights", null=False)) is not None:
        if typed := [k for k in RESUME_KEYS if last_value(args, k, null=False) is not None]:
            raise UserError(f"init_weights={weights}: starts a new run from a checkpoint's weights alone; it cannot be "
                            f"combined with {typed[0]}=, which continues a run with its optimizer and schedule; "
                            "drop one of them")
        path = _checkpoint(weights, "init_weights", "; pass a .ckpt file written by a run")
        # In place: Hydra reads overrides only before its own flags (--cfg job).
        args = [f"init_weights={hydra_quoted(path)}" if key_of(a) == "init_weights" else a for a in args]
    resume, ckpt_path = last_value(args, "resume", null=False), last_value(args, "ckpt_path", null=False)
    if (resume is None and ckpt_path is None) or is_ddp_rank_relaunch(args):
        return args  # a DDP relaunch (Lightning re-runs this command for the other ranks) is expanded already
    if "-m" in args or "--multirun" in args:
        if resume is None:
            raise UserError(f"ckpt_path={ckpt_path}: continues one run, not a sweep (-m); continue a sweep "
                            "with -m resume=<sweep dir>")
        return sweep_arguments(args, resume)
    if resume is not None:
        run_dir = Path(resume).expanduser().resolve()
        if not is_run_dir(run_dir):
            raise UserError(f"resume={resume}: not a run folder (no .hydra/overrides.yaml there); "
                            "pass a folder under outputs/<task>/runs/")
        checkpoint = newest_loadable(run_dir / LAST_CHECKPOINT.parent)
        if checkpoint is None:
            print(f"warning: resume={resume}: no loadable checkpoint (the run stopped before its "
                  "first one); starting it over in its folder", file=sys.stderr)
    else:
        checkpoint = _checkpoint(ckpt_path)
        run_dir = checkpoint.parent.parent
        if not is_run_dir(run_dir):  # a checkpoint from elsewhere: a new run starts from it
            return [a for a in args if not a.startswith("ckpt_path=")] + [f"ckpt_path={hydra_quoted(checkpoint)}"]
    typed_dir = last_value(args, "hydra.run.dir")
    if typed_dir is not None and Path(typed_dir).expanduser().resolve() != run_dir:
        raise UserError(f"hydra.run.dir={typed_dir}: {'ckpt_path' if resume is None else 'resume'}= continues the "
                        f"run in its own folder {run_dir}; drop hydra.run.dir (or start a new run from the "
                        "checkpoint by copying it out of the run folder)")
    typed = [a for a in args if not a.startswith(tuple(f"{k}=" for k in (*RESUME_KEYS, "hydra.run.dir")))]
    return [*still_apply(saved_overrides(run_dir), typed), *typed, f"resume={hydra_quoted(run_dir)}",
            f"ckpt_path={hydra_quoted(checkpoint) if checkpoint else 'null'}",
            f"hydra.run.dir={hydra_quoted(run_dir)}", f"hydra.output_subdir={resumed_record()}"]


def resumed_record() -> str:
    """A resumed job's Hydra record: in `.hydra/`, so that the job's own record stays for the next resume."""
    return time.strftime(f".hydra/resumed-%Y-%m-%d_%H-%M-%S-{os.getpid()}")


def sweep_arguments(args: list[str], resume: str) -> list[str]:
    """`-m resume=<sweep dir>` expanded: the sweep's own overrides that the typed ones leave standing, then those."""
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
    typed = [a for a in args if a not in flags and key_of(a) not in ("resume", "hydra.sweep.dir")]
    saved = still_apply([*task, *(o for o in hydra if key_of(o) not in SWEEP_OWN_KEYS)], typed)
    return [*saved, *typed, f"hydra.sweep.dir={hydra_quoted(sweep)}", f"hydra.output_subdir={resumed_record()}",
            *flags]


def _saved_command_line(path: Path, what: str) -> Any:
    """A run's or a sweep's saved command line (YAML); an unreadable file is a one-line UserError."""
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserError(f"{path}: cannot read the {what}'s command line ({first_line(exc)}); restore the file, "
                        f"or start a new {what}") from None


def saved_sweep(sweep: Path) -> tuple[list[str], list[str], list[str]]:
    """A sweep's command line from its multirun.yaml: task overrides, Hydra's, and the recipe's sweeper params."""
    path = sweep / SWEEP_RECORD if (sweep / SWEEP_RECORD).is_file() else sweep / MULTIRUN_FILE
    saved = _saved_command_line(path, "sweep")
    hydra = saved.get("hydra") if isinstance(saved, dict) else None
    overrides, sweeper = (hydra.get(k) if isinstance(hydra, dict) else None for k in ("overrides", "sweeper"))
    task, hydra = (overrides.get(k) if isinstance(overrides, dict) else None for k in ("task", "hydra"))
    params = sweeper.get("params") if isinstance(sweeper, dict) else None
    if not (isinstance(task, list) and isinstance(hydra, list) and all(isinstance(o, str) for o in task + hydra)):
        raise UserError(f"{path}: damaged (expected hydra.overrides.task and .hydra, lists of overrides); "
                        "restore the file, or start a new sweep")
    return task, hydra, [f"{k}={v}" for k, v in (params if isinstance(params, dict) else {}).items()]


def keep_sweep_record(sweep: Path) -> None:
    """Keep a resumed sweep's own multirun.yaml (see SWEEP_RECORD) before its sweeper rewrites it."""
    if (sweep / MULTIRUN_FILE).is_file() and not (sweep / SWEEP_RECORD).is_file():
        (sweep / SWEEP_RECORD).parent.mkdir(exist_ok=True)
        shutil.copy2(sweep / MULTIRUN_FILE, sweep / SWEEP_RECORD)


def check_same_jobs(sweep: Path, params: list[str], task: list[str]) -> None:
    """A resumed sweep must make the jobs it made before, in order, so each finds its folder: else one line."""
    if not (sweep / MULTIRUN_FILE).is_file():
        return
    saved_task, _, saved_params = saved_sweep(sweep)
    (before, axes_before), (now, axes_now) = basic_jobs([*saved_params, *saved_task]), basic_jobs([*params, *task])
    axes = axes_before | axes_now
    swept = [[[o for o in job if o.split("=", 1)[0] in axes] for job in jobs] for jobs in (before, now)]
    if swept[0] == swept[1]:
        return
    keys = {key_of(a) for a in axes}
    changed = next((o for o in task if o not in saved_task and any(k == key_of(o) or k.startswith(f"{key_of(o)}.")
                                                                    for k in keys)), None)
    sweeps = " ".join(o for o in saved_task if o.split("=", 1)[0] in axes_before) or "its recipe's params"
    raise UserError(f"{changed or f'resume={sweep}'}: changes the jobs of the sweep it resumes ({len(before)} jobs "
                    f"over {sweeps}); a resumed sweep runs its own jobs: type only keys it does not sweep, "
                    "or start a new sweep")


def still_apply(saved: list[str], typed: list[str]) -> list[str]:
    """The saved overrides the typed ones leave: not their keys, nor the keys of a typed group's old option."""
    replaced = {key_of(a) for a in typed}
    groups = {key for key in replaced if (CONF_DIR / key).is_dir()}
    return [o for o in saved if key_of(o) not in replaced and key_of(o).split(".", 1)[0] not in groups]


def saved_overrides(run_dir: Path) -> list[str]:
    """The overrides a run was started with (its .hydra/overrides.yaml), less resume/ckpt_path."""
    path = run_dir / ".hydra" / "overrides.yaml"
    saved = _saved_command_line(path, "run")
    if not isinstance(saved, list) or not all(isinstance(o, str) for o in saved):
        raise UserError(f"{path}: damaged (expected a YAML list of overrides such as [arch=resnet20], "
                        "or [] for none); restore the file, or start a new run")
    return [o for o in saved if not o.startswith(tuple(f"{k}=" for k in RESUME_KEYS))]


def eval_arguments(args: list[str]) -> list[str]:
    """For `eval`: the checkpoint's run's own overrides first (same arch and data), then the user's."""
    ckpt_path = last_value(args, "ckpt_path", null=False)
    if ckpt_path is None and {"--help", "-h", "--hydra-help"} & set(args):
        return args  # help needs no checkpoint
    if ckpt_path is None:
        raise UserError("ckpt_path: required; evaluate a checkpoint with ckpt_path=<file>")
    if last_value(args, "init_weights", null=False) is not None:
        raise UserError("init_weights: not for eval, which tests the weights of ckpt_path=<file>; drop init_weights")
    checkpoint = _checkpoint(ckpt_path)
    run_dir = checkpoint.parent.parent
    # The run's loggers and callbacks are training's; conf/eval.yaml chooses its own.
    own = [o for o in (saved_overrides(run_dir) if is_run_dir(run_dir) else [])
           if not key_of(o).startswith(EVAL_OWN_GROUPS) and key_of(o) not in EVAL_WHOLE_TEST_KEYS]
    typed = [a for a in args if not a.startswith("ckpt_path=")]
    return [*still_apply(own, typed), *typed, f"ckpt_path={hydra_quoted(checkpoint)}"]


def check_resume_length(cfg: DictConfig) -> None:
    """Refuse a resume of a finished run unless made longer (not when stopped early), or past trainer.max_epochs."""
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
