"""The folder a job writes into: never another run's, locked while a process uses it, and removed
after a failed set-up only if this process made it.

- `refuse_existing_runs`: `hydra.run.dir=<a run>` or `hydra.sweep.dir=<a sweep>` typed by the user
  would overwrite that run's files (Hydra writes its `.hydra/` before any code of ours runs), so it
  is refused before Hydra starts; `resume=` (`-m resume=` for a sweep) is the way to continue one.
- `note_existing_folders`: which of the folders named on the command line existed before Hydra
  made any, so that a failed set-up never removes a folder (or a sweep's job folder) it did not make.
- `RunFolder`: an exclusive `flock` on `<run dir>/.lock` for the whole job. A second process
  (two resumes of one run, a resume of a run still training) refuses with one line naming the
  holder (`FolderInUse`). The kernel drops the lock when its process dies, SIGKILL included, so a
  stale lock is taken over; its leftover holder line says whose it was.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig

from resnet_exp.app.arguments import is_ddp_rank_relaunch, typed_value
from resnet_exp.errors import UserError
from resnet_exp.io import is_rank_zero, is_run_dir

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
RUN_DIR_KEYS = ("hydra.run.dir", "hydra.sweep.dir")
CONTINUE_KEYS = ("resume", "ckpt_path")

_existing: frozenset[Path] = frozenset()  # see note_existing_folders


class FolderInUse(UserError):
    """The run folder is locked by another process; `holder` is its line in the lock file."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path}: in use by another process ({holder}); wait for it to end "
                         "or stop it, then try again")
        self.holder = holder


def _typed(args: list[str], keys: tuple[str, ...]) -> list[tuple[str, str, Path]]:
    """(key, value, absolute path) of each `key=value` among `args` naming a folder."""
    found = []
    for arg in args:
        key, _, value = arg.lstrip("+").partition("=")
        path = typed_value(f"{key}={value}") if key in keys else None
        if path and "${" not in path:
            found.append((key, value, Path(path).expanduser().absolute()))
    return found


def refuse_existing_runs(args: list[str]) -> None:
    """A typed run or sweep folder that holds a run or a sweep already is refused (one line)."""
    if any(arg.split("=", 1)[0] in CONTINUE_KEYS and not arg.endswith("=null") for arg in args):
        return  # resume= / ckpt_path= continue a run in its own folder on purpose
    if is_ddp_rank_relaunch(args):
        return  # rank 0's folder, which this rank shares
    for key, value, path in _typed(args, RUN_DIR_KEYS):
        if key == "hydra.run.dir" and is_run_dir(path):
            raise UserError(f"{key}={value}: {path} holds a run already; continue it with resume={path}, "
                            "or choose a new folder")
        if key == "hydra.sweep.dir" and (path / "multirun.yaml").is_file():
            raise UserError(f"{key}={value}: {path} holds a sweep already; continue it with "
                            f"-m resume={path}, or choose a new folder")


def check_output_folder(folder: Path, overrides: list[str], folder_key: str) -> None:
    """The folder a run or sweep will write (resolved, before Hydra makes it) must be creatable and
    writable. The one-line error names the typed key that decides where it is."""
    path = folder.expanduser().absolute()
    keys = (folder_key, "paths.log_dir", "task_name")
    typed = {o.lstrip("+").split("=", 1)[0]: o.lstrip("+") for o in overrides}
    named = next((typed[k] for k in keys if k in typed), folder_key)
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"{named}: cannot create the output folder {path}: {existing} is a file; choose a folder path")
    try:  # the real test (root passes os.access everywhere, read-only mounts included)
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".write-test-"))
    except OSError as exc:
        raise UserError(f"{named}: cannot create the output folder {path} ({exc.strerror} in {existing}); "
                        "choose a folder you can write") from None


def note_existing_folders(args: list[str]) -> None:
    """Remember the folders named by `hydra.run.dir`/`hydra.sweep.dir` (and a sweep folder's
    sub-folders) that exist now, before Hydra makes any: `discard_on_setup_error` keeps them."""
    global _existing
    found: set[Path] = set()
    for _, _, path in _typed(args, RUN_DIR_KEYS):
        if path.is_dir():
            found.add(path.resolve())
            found.update(p.resolve() for p in path.iterdir() if p.is_dir())
    _existing = frozenset(found)


def _holder() -> str:
    return f"host {socket.gethostname()}, pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}"


class RunFolder:
    """The job's run folder, held for the `with` block:

        with RunFolder() as folder:      # locked; a failure now takes back what this job added
            ...set up...
            folder.set_up()              # from here on a failure keeps everything
            ...train...

    Until `set_up()`, a failure removes the whole folder when this process made it and it holds
    only Hydra's files (`.hydra/`, the job's log, the lock); in a folder that existed before
    (resume=), only this attempt's `.hydra/resumed-*` record. Only the first process of a job
    locks: Lightning's DDP re-runs the command for the other ranks.
    """

    def __init__(self) -> None:
        hc = HydraConfig.get()
        self.path = Path(hc.runtime.output_dir)
        self._own_files = {".hydra", f"{hc.job.name}.log", LOCK_FILE}
        self._record = self.path / str(hc.output_subdir or ".hydra")
        self._fd: int | None = None
        self._setting_up = True

    def set_up(self) -> None:
        self._setting_up = False

    @property
    def is_set_up(self) -> bool:
        """True once `set_up()` was called: a failure from then on keeps the folder."""
        return not self._setting_up

    def __enter__(self) -> RunFolder:
        try:
            if is_rank_zero():
                self._lock()
        except FolderInUse:
            self.remove_record()  # the folder is the other process's: only this attempt's record goes
            raise
        except BaseException:
            self._take_back()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is not None and self._setting_up:
            self._take_back()
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # an empty lock file: released cleanly
            os.close(self._fd)
            self._fd = None

    def _lock(self) -> None:
        path = self.path / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderInUse(self.path, path.read_text().strip() or "another process") from None
        stale = os.pread(fd, 4096, 0).decode(errors="replace").strip()
        if stale:  # written by a holder that never released the lock: it was killed
            log.warning("%s: took over the lock of a process that is gone (%s)", self.path, stale)
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder().encode(), 0)
        self._fd = fd

    def remove_record(self) -> None:
        """Remove this attempt's `.hydra/resumed-*` record (never the folder's own `.hydra`)."""
        if self._record.parent != self.path and self._record.is_dir():
            shutil.rmtree(self._record, ignore_errors=True)

    def _take_back(self) -> None:
        run_dir = self.path
        if run_dir.resolve() in _existing:
            self.remove_record()
        elif run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= self._own_files:
            shutil.rmtree(run_dir, ignore_errors=True)
            # ... and the folders Hydra made for it (outputs/<task>/runs/) if nothing else is there
            for parent in list(run_dir.parents)[:3]:
                if parent == Path.cwd() or not parent.is_dir() or any(parent.iterdir()):
                    break
                parent.rmdir()
