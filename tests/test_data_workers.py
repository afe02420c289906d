"""DataLoader workers: a request far beyond the cores is capped with one warning, and the workers
of a run that is killed (SIGKILL, the out-of-memory killer) do not live on."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resnet_exp.data import ImageDataModule
from resnet_exp.data.workers import WORKERS_PER_CORE
from tests.helpers.cli import TINY_RUN, cli_env

SYNTHETIC = dict(name="synthetic", train_size=64, test_size=16, val_size=16, batch_size=8, image_size=16)


def test_far_too_many_workers_are_capped_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    cap = WORKERS_PER_CORE * len(os.sched_getaffinity(0))
    with caplog.at_level(logging.WARNING):
        dm = ImageDataModule(**SYNTHETIC, num_workers=100000)
    assert dm.num_workers == cap
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(f"data.num_workers=100000: more DataLoader workers than this process can use; "
                              f"starting {cap} instead")


def test_a_number_within_the_cap_is_kept_without_a_word(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        dm = ImageDataModule(**SYNTHETIC, num_workers=WORKERS_PER_CORE)
    assert dm.num_workers == WORKERS_PER_CORE and not caplog.records


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, start time) of the processes whose parent is `pid`; the start time tells a process
    from a later one that got the same pid."""
    found = []
    for entry in os.listdir("/proc"):
        fields = _stat(int(entry)) if entry.isdigit() else None
        if fields and int(fields[1]) == pid:
            found.append((int(entry), fields[19]))
    return found


def _alive(worker: tuple[int, str]) -> bool:
    """Running or stopped; a zombie (dead, waiting to be reaped by whoever adopted it) is not."""
    fields = _stat(worker[0])
    return fields is not None and fields[19] == worker[1] and fields[0] != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_workers_of_a_killed_run_exit_with_it(tmp_path: Path) -> None:
    """A run with 2 loader workers; the workers are stopped (SIGSTOP: as busy as a worker can be,
    so torch's own check for a dead parent never runs), then the run gets SIGKILL. The kernel
    must take the workers with it."""
    args = [*TINY_RUN, "data.num_workers=2", "data.train_size=4000", "trainer.max_epochs=100"]
    proc = subprocess.Popen([sys.executable, "-m", "resnet_exp.run", *args, f"hydra.run.dir={tmp_path / 'run'}"],
                            cwd=tmp_path, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[tuple[int, str]] = []
    try:
        deadline = time.monotonic() + 240
        while len(workers) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
            workers = _children(proc.pid)
        assert len(workers) >= 2, f"no loader workers started (exit {proc.poll()})"
        for pid, _ in workers:
            os.kill(pid, signal.SIGSTOP)
        proc.kill()
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [w for w in workers if _alive(w)], "workers outlived the killed run"
    finally:
        if proc.poll() is None:
            proc.kill()
        for worker in workers:  # only if the test failed: they are this test's own processes
            if _alive(worker):
                os.kill(worker[0], signal.SIGKILL)
