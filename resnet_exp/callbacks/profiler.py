"""The trainer's profiler when the config names none: Lightning's pass-through, without its cost."""

from __future__ import annotations

import contextlib

from pytorch_lightning.profilers import PassThroughProfiler

_NOTHING = contextlib.nullcontext()  # holds no state: one instance serves every (nested) use


class NoProfiler(PassThroughProfiler):
    """Records nothing, as Lightning's default does. Lightning wraps every hook call in
    `profiler.profile(name)`, about 50 times per training step with the default callbacks; the
    default's generator-based context manager costs a few microseconds each time, this one almost
    nothing. A profiler set in the config (`+trainer.profiler=simple`) is used instead."""

    def profile(self, action_name: str) -> contextlib.AbstractContextManager:  # type: ignore[override]
        return _NOTHING
