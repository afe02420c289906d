"""SIGTERM for the entry points: a one-line error and exit code 143 (128 + SIGTERM, as shells
report a process killed by it), never a silent exit 0.

- While Lightning fits or tests, its own handler is in place (it calls ours too, which then leaves
  the signal to it): the loop stops at the end of the batch, the resume checkpoint is written, and
  `resnet_exp.callbacks.sigterm` raises `Terminated`.
- Anywhere else (setting up, writing results, between the jobs of a sweep) our handler raises
  `Terminated` at once.
- `say_how_to_continue` completes the message of a run: the command that continues it.
Once the stop is under way (our handler raised, or the run's error is being reported), a second
SIGTERM ends the process at once (the default action).
"""

from __future__ import annotations

import re
import shlex
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from resnet_exp.app.arguments import hydra_quoted
from resnet_exp.app.run_dir import RunFolder
from resnet_exp.errors import Terminated

TERMINATED_EXIT_CODE = 128 + signal.SIGTERM


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()  # the only one that may set handlers


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if signal.getsignal(signal.SIGTERM) is not _on_sigterm:
        return  # called by Lightning's handler, which stops the fit or test at the end of the batch
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminated("stopped by SIGTERM")


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Inside the block a SIGTERM raises `Terminated` (see the module's notes); the previous
    handler is put back afterwards. Only the main thread can set handlers; elsewhere a no-op."""
    if not _in_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def resume_command(run_dir: Path, sweep: bool = False) -> str:
    """The command that continues the run (or with `sweep`, the sweep) in `run_dir`, quoted for a
    shell and for Hydra."""
    value = str(run_dir) if re.fullmatch(r"[\w./-]+", str(run_dir)) else hydra_quoted(run_dir)
    return f"python -m resnet_exp.run {'-m ' if sweep else ''}{shlex.quote(f'resume={value}')}"


def _sweep_dir() -> Path | None:
    """The folder of the sweep this job belongs to; None outside a multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    return Path(hc.runtime.cwd, hc.sweep.dir) if hc.mode == RunMode.MULTIRUN else None


@contextmanager
def say_how_to_continue(folder: RunFolder) -> Iterator[None]:
    """A `Terminated` leaving the block ends with what to do next: resume the run once it has a
    folder to continue in, else run the command again (the set-up is taken back); in a sweep,
    resume the sweep."""
    try:
        yield
    except Exception as error:
        exc = Terminated.behind(error)
        if exc is None:
            raise
        if _in_main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM: stop now
        sweep = _sweep_dir()
        if sweep is not None:  # the signal stops the whole sweep
            how = f"resume the sweep with: {resume_command(sweep, sweep=True)}"
            if folder.is_set_up:
                raise Terminated(f"{exc}; {how} (this job alone: {resume_command(folder.path)})") from None
            raise Terminated(f"{exc} while the job was being set up; {how}") from None
        if folder.is_set_up:
            raise Terminated(f"{exc}; resume with: {resume_command(folder.path)}") from None
        raise Terminated(f"{exc} while the run was being set up; nothing was trained: run the command again") from None
