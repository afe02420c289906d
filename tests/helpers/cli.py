"""Run the real CLI as a user would: in a subprocess, or in this process (no import cost).

Both runners take the same arguments and return a `subprocess.CompletedProcess[str]`:

    run_cli("resnet_exp.report", str(sweep), cwd=tmp_path)           # python -m ... in a subprocess
    run_in_process("resnet_exp.report", str(sweep), cwd=tmp_path)    # the same module, this process
    run_train(...) / train_in_process(...)                           # resnet_exp.run

The subprocess runner is for what only a process shows (exit codes, the one-line error as the
shell sees it, DDP's re-launched ranks, launchers); everything else runs in-process, which saves
the 5-10 s of importing torch and Lightning per call on a slow CPU.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import random
import runpy
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]

# Small enough for two slow CPU cores: a tiny net, few epochs, no wandb.
TINY_TRAINING = [
    "data.batch_size=32",
    "data.num_workers=0",
    "arch=resnet18",
    "arch.width=0.125",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.max_epochs=2",
    "logger.wandb.mode=disabled",
]
# ... on a few hundred 16 px synthetic images.
TINY_RUN = [
    "data=synthetic",
    "data.image_size=16",
    "data.train_size=256",
    "data.test_size=64",
    "data.val_size=64",
    *TINY_TRAINING,
]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI call: none of the caller's wandb/Hydra settings, this checkout's
    package first on the path (so a subprocess imports the code under test, not an installed copy),
    one torch thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "HYDRA_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")  # see pytest_configure in tests/conftest.py
    env.update({"PYTHONUNBUFFERED": "1", "WANDB_SILENT": "true", **extra})  # `extra` may undo WANDB_SILENT
    return env


def run_cli(module: str, *overrides: str, cwd: Path, timeout: float = 300,
            **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m <module> <overrides>` started in `cwd`; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *overrides],
        cwd=cwd,
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_train(*overrides: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli("resnet_exp.run", *overrides, cwd=cwd, **env)


def explain(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"


# ----------------------------------------------------------------------------- in-process
def _exit_code(exc: SystemExit, stderr: io.StringIO) -> int:
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=stderr)  # sys.exit("message"): Python prints it and exits with 1
    return 1


def finish_open_wandb_run() -> None:
    """Finish a wandb run left open: WandbLogger would reuse it, so the next run's logging would
    land in it (the entry point's Hydra callback finishes runs; a fit driven directly does not)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


@contextlib.contextmanager
def isolated(argv: list[str], cwd: Path, env: dict[str, str]) -> Iterator[None]:
    """Process-wide state a CLI call may change, put back afterwards: argv, cwd, environment
    (WandbLogger sets WANDB_MODE, Lightning PL_GLOBAL_SEED), Hydra's singletons, logging
    handlers (Hydra points the root logger at the job's log file), torch's global switches
    (deterministic algorithms, TF32, cuDNN) and the random generators."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    saved_env = dict(os.environ)
    saved_argv, saved_cwd = sys.argv[:], os.getcwd()
    loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values()
                                      if isinstance(lg, logging.Logger))]
    saved_logging = {lg: (lg.level, lg.handlers[:], lg.propagate, lg.disabled) for lg in loggers}
    saved_torch = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
                   torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32,
                   torch.get_float32_matmul_precision(), torch.get_num_threads())
    saved_rng = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    GlobalHydra.instance().clear()
    os.environ.clear()
    os.environ.update(env)
    sys.argv = argv
    os.chdir(cwd)
    try:
        yield
    finally:
        finish_open_wandb_run()
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
        for lg in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
            if not isinstance(lg, logging.Logger):
                continue
            level, handlers, propagate, disabled = saved_logging.get(lg, (logging.NOTSET, [], True, False))
            for handler in lg.handlers:
                if handler not in handlers:
                    handler.close()  # e.g. the job's log file
            lg.setLevel(level)
            lg.handlers[:] = handlers
            lg.propagate, lg.disabled = propagate, disabled
        deterministic, benchmark, cudnn_det, tf32, precision, threads = saved_torch
        torch.use_deterministic_algorithms(deterministic)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = benchmark, cudnn_det
        torch.backends.cudnn.allow_tf32 = tf32
        torch.set_float32_matmul_precision(precision)
        torch.set_num_threads(threads)
        random.setstate(saved_rng[0])
        np.random.set_state(saved_rng[1])
        torch.set_rng_state(saved_rng[2])


def run_in_process(module: str, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m <module> <args>` run in this process, as `python -m` runs it (the module's code
    as `__main__`), with the environment of `run_cli` and its output captured.

    An uncaught exception is printed as a traceback and gives exit code 1, as in a real process.
    """
    argv = [str(Path(module.replace(".", "/")).with_suffix(".py")), *args]
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    with isolated(argv, Path(cwd), cli_env(**env)), \
            contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        # A module already imported (by Hydra's launcher, or a test) would make runpy warn on stderr.
        main = module if importlib.util.find_spec(module).submodule_search_locations is None else f"{module}.__main__"
        sys.modules.pop(main, None)
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=False)
        except SystemExit as exc:
            code = _exit_code(exc, stderr)
        except Exception:  # noqa: BLE001 - what the interpreter does with it
            traceback.print_exc(file=stderr)
            code = 1
    return subprocess.CompletedProcess([sys.executable, "-m", module, *args], code,
                                       stdout.getvalue(), stderr.getvalue())


def train_in_process(*overrides: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_in_process("resnet_exp.run", *overrides, cwd=cwd, **env)

