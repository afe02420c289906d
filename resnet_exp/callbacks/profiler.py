"""The trainer's profiler when the config names none: Lightning's pass-through, without its cost."""

from __future__ import annotations

import contextlib

from pytorch_lightning.profilers import PassThroughProfiler

_NOTHING = contextlib.nullcontext()  # holds no state: one instance serves every (nested) use


class NoProfiler(PassThroughProfiler):
    """Records nothing, without the generator-based context manager of Lightning's (a few us per hook call)."""

    def profile(self, action_name: str) -> contextlib.AbstractContextManager:  # type: ignore[override]
        return _NOTHING
