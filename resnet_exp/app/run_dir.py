"""The folder a job writes into: never another run's, locked while a process uses it (a `flock` the kernel drops when
its process dies, so a stale lock is taken over), and removed after a failed set-up only if this process made it."""

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
from omegaconf import DictConfig, OmegaConf

from resnet_exp.app.arguments import RESUME_KEYS, is_ddp_rank_relaunch, typed_value
from resnet_exp.errors import UserError
from resnet_exp.io import LAST_CHECKPOINT, is_rank_zero, is_run_dir, remove_temp_files

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
RUN_DIR_KEYS = ("hydra.run.dir", "hydra.sweep.dir")

_existing: frozenset[Path] = frozenset()  # see note_existing_folders


class FolderInUse(UserError):
    """The run folder is locked by another process; `holder` is its line in the lock file."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path}: in use by another process ({holder}); wait for it to end or stop it, then try again")
        self.holder = holder


def sweep_folder(hydra: DictConfig) -> Path:
    """The sweep folder of Hydra's config `hydra`, relative to where the command was started (no chdir in jobs)."""
    return Path(OmegaConf.select(hydra, "runtime.cwd", default=None) or os.getcwd(), str(hydra.sweep.dir))


def _typed(args: list[str]) -> list[tuple[str, str, Path]]:
    """(key, value, absolute path) of each `hydra.run.dir=`/`hydra.sweep.dir=` among `args`."""
    pairs = (arg.lstrip("+").partition("=")[::2] for arg in args)
    typed = [(key, value, typed_value(f"{key}={value}")) for key, value in pairs if key in RUN_DIR_KEYS]
    return [(key, value, Path(path).expanduser().absolute()) for key, value, path in typed if path and "${" not in path]


def refuse_existing_runs(args: list[str]) -> None:
    """A typed run or sweep folder that holds a run or a sweep already is refused (one line)."""
    if is_ddp_rank_relaunch(args) or any(a.split("=", 1)[0] in RESUME_KEYS and not a.endswith("=null") for a in args):
        return  # a DDP rank shares rank 0's folder; resume= / ckpt_path= continue a run in its own on purpose
    for key, value, path in _typed(args):
        if key == "hydra.run.dir" and is_run_dir(path):
            raise UserError(f"{key}={value}: {path} holds a run already; continue it with resume={path}, "
                            "or choose a new folder")
        if key == "hydra.sweep.dir" and (path / "multirun.yaml").is_file():
            raise UserError(f"{key}={value}: {path} holds a sweep already; continue it with "
                            f"-m resume={path}, or choose a new folder")


def check_output_folder(folder: Path, overrides: list[str], folder_key: str) -> None:
    """The folder a run or sweep will write must be creatable and writable; the error names the typed key."""
    path = folder.expanduser().absolute()
    typed = {o.lstrip("+").split("=", 1)[0]: o.lstrip("+") for o in overrides}
    named = next((typed[k] for k in (folder_key, "paths.log_dir", "task_name") if k in typed), folder_key)
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"{named}: cannot create the output folder {path}: {existing} is a file; choose a folder path")
    try:  # the real test (root passes os.access everywhere, read-only mounts included)
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".write-test-"))
    except OSError as exc:
        raise UserError(f"{named}: cannot create the output folder {path} ({exc.strerror} in {existing}); "
                        "choose a folder you can write") from None


def note_existing_folders(args: list[str]) -> None:
    """Remember the typed run or sweep folders (and job folders) there before Hydra: a failed set-up keeps them."""
    global _existing
    folders = [path for _, _, path in _typed(args) if path.is_dir()]
    _existing = frozenset(p.resolve() for path in folders for p in (path, *path.iterdir()) if p.is_dir())


class RunFolder:
    """The job's run folder, locked for the `with` block (by a job's first process). Until `set_up()`, a failure
    removes what this attempt made: the folder if it holds only Hydra's files, else its `.hydra/resumed-*` record."""

    def __init__(self) -> None:
        hc = HydraConfig.get()
        self.path = Path(hc.runtime.output_dir)
        self._own_files = {".hydra", f"{hc.job.name}.log", LOCK_FILE}
        self._record = self.path / str(hc.output_subdir or ".hydra")
        self._fd: int | None = None
        self.is_set_up = False  # True once `set_up()` was called: a failure from then on keeps the folder

    def set_up(self) -> None:
        self.is_set_up = True

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
        if kind is not None and not self.is_set_up:
            self._take_back()
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # an empty lock file: released cleanly
            os.close(self._fd)
            self._fd = None

    def _lock(self) -> None:
        fd = os.open(path := self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderInUse(self.path, path.read_text().strip() or "another process") from None
        if stale := os.pread(fd, 4096, 0).decode(errors="replace").strip():  # its holder never released it: killed
            log.warning("%s: took over the lock of a process that is gone (%s)", self.path, stale)
        os.ftruncate(fd, 0)
        holder = f"host {socket.gethostname()}, pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}"
        os.pwrite(fd, holder.encode(), 0)
        self._fd = fd
        # Only now: before the lock is ours, a temp file may be a live holder's checkpoint being written.
        remove_temp_files(self.path / LAST_CHECKPOINT.parent)

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
