"""Lightning's ModelCheckpoint with its state key computed once."""

from __future__ import annotations

import functools

from pytorch_lightning.callbacks import ModelCheckpoint as LightningModelCheckpoint


class ModelCheckpoint(LightningModelCheckpoint):
    """The same callback. Lightning names every callback hook call for its profiler after the
    callback's `state_key`, which ModelCheckpoint rebuilds from its arguments each time (a dict
    repr): about a dozen times per training batch for the run's two checkpoint callbacks. The
    arguments never change after construction, so neither does the key."""

    @functools.cached_property
    def state_key(self) -> str:  # type: ignore[override]
        return super().state_key
