"""SIGTERM for the entry points: one line and exit code 143 (128 + SIGTERM), never a silent exit 0; while Lightning
fits or tests its handler stops at the end of the batch and writes the resume checkpoint, elsewhere ours raises."""

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
from resnet_exp.app.run_dir import RunFolder, sweep_folder
from resnet_exp.errors import Terminated

TERMINATED_EXIT_CODE = 128 + signal.SIGTERM


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if signal.getsignal(signal.SIGTERM) is not _on_sigterm:
        return  # called by Lightning's handler, which stops the fit or test at the end of the batch
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminated("stopped by SIGTERM")


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Inside the block a SIGTERM raises `Terminated`, then the previous handler is back (main thread only)."""
    main = threading.current_thread() is threading.main_thread()  # the only one that may set handlers
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def resume_command(run_dir: Path, sweep: bool = False) -> str:
    """The command that continues the run (or the sweep) in `run_dir`, quoted for a shell and for Hydra."""
    value = str(run_dir) if re.fullmatch(r"[\w./-]+", str(run_dir)) else hydra_quoted(run_dir)
    return f"python -m resnet_exp.run {'-m ' if sweep else ''}{shlex.quote(f'resume={value}')}"


@contextmanager
def say_how_to_continue(folder: RunFolder) -> Iterator[None]:
    """A `Terminated` leaving the block ends with what to do next: resume the run (or the sweep), or run again."""
    try:
        yield
    except Exception as error:
        exc = Terminated.behind(error)
        if exc is None:
            raise
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM: stop now
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        if hc.mode == RunMode.MULTIRUN:
            how = f"resume the sweep with: {resume_command(sweep_folder(hc), sweep=True)}"
            if folder.is_set_up:
                raise Terminated(f"{exc}; {how} (this job alone: {resume_command(folder.path)})") from None
            raise Terminated(f"{exc} while the job was being set up; {how}") from None
        if folder.is_set_up:
            raise Terminated(f"{exc}; resume with: {resume_command(folder.path)}") from None
        raise Terminated(f"{exc} while the run was being set up; nothing was trained: run the command again") from None
