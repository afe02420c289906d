"""The only places the project touches internals of Lightning, torchmetrics or torch (tests check that, and
name the installed version when one stops working): each does what no public API does, or measured worth at
least 20 us per training step (`python -m benchmarks --sections attribution`)."""

from __future__ import annotations

import sys
from typing import Any

# LightningModule attribute that Lightning sets before and after every hook call.
HOOK_NAME_ATTRIBUTE = "_current_fx_name"


class FastHookName:
    """Mixin for a LightningModule (list it before `pl.LightningModule`): Lightning sets `_current_fx_name`
    around every hook call, about 45 times per step, and `nn.Module.__setattr__` first searches parameters,
    buffers and submodules (about 1 us). The plain string is stored directly: 53 to 75 us less per step."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == HOOK_NAME_ATTRIBUTE:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)


def compile_count() -> int:
    """Graphs torch.compile has compiled so far in this process (0 if dynamo was never used); no public API
    counts compilations."""
    utils = sys.modules.get("torch._dynamo.utils")  # not imported here: it is slow to import
    return utils.counters["stats"]["unique_graphs"] if utils is not None else 0


# WandbLogger's keyword arguments for wandb.init, kept until the run starts.
WANDB_INIT_ATTRIBUTE = "_wandb_init"


def drop_wandb_anonymous(logger: Any) -> Any:
    """`logger` (a WandbLogger) without the `anonymous=None` it always passes to wandb.init (wandb 0.31 warns
    that any value of it has no effect); no public argument leaves it out."""
    getattr(logger, WANDB_INIT_ATTRIBUTE).pop("anonymous", None)
    return logger
