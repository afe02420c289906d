"""DataLoader worker processes: how many a process may start, and that they die with it (torch notices
a dead parent only while a worker waits for work, so a busy worker of a killed run would live on)."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys

from lightning_fabric.utilities.seed import pl_worker_init_function

log = logging.getLogger(__name__)

WORKERS_PER_CORE = 2
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def capped_workers(requested: int, key: str = "data.num_workers") -> int:
    """`requested`, or WORKERS_PER_CORE x the cores this process may use if that is fewer (one warning
    line): far more workers than cores would start that many copies of the process and bring in the OOM killer."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cap = WORKERS_PER_CORE * cores
    if requested > cap:
        log.warning("%s=%d: more DataLoader workers than this process can use; starting %d instead "
                    "(%d per core, %d cores usable)", key, requested, cap, WORKERS_PER_CORE, cores)
    return min(requested, cap)


def init_worker(worker_id: int, parent: int, rank: int = 0) -> None:
    """`worker_init_fn` of the project's DataLoaders (bound with functools.partial): the kernel SIGKILLs the
    worker when `parent` ends (Linux), and it is seeded as Lightning seeds workers (which Lightning does only
    for loaders without a worker_init_fn of their own)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            log.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        elif os.getppid() != parent:  # already gone
            os._exit(1)
    if int(os.environ.get("PL_SEED_WORKERS", 0)):
        pl_worker_init_function(worker_id, rank=rank)
