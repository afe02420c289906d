"""The trainer's profiler when the config names none: Lightning's pass-through, without its cost."""

from __future__ import annotations

import contextlib

from pytorch_lightning.profilers import PassThroughProfiler

_NOTHING = contextlib.nullcontext()  # holds no state: one instance serves every (nested) use


class NoProfiler(PassThroughProfiler):
    """Records nothing, as Lightning's default does, without its generator-based context manager (a few us
    for each of ~50 hook calls per step). A profiler in the config (`+trainer.profiler=simple`) replaces it."""

    def profile(self, action_name: str) -> contextlib.AbstractContextManager:  # type: ignore[override]
        return _NOTHING
