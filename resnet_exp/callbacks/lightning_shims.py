"""The only places the project touches internals of Lightning, torchmetrics or torch.

Each is kept because no public API does the job, or because the probe
(`python -m benchmarks.attribution`) measured it worth at least 20 us per training step.
tests/test_lightning_shims.py checks every internal used here and names the installed version
when one stops working (pytorch-lightning is pinned below 2.7, whose internals will differ).
Nothing else in resnet_exp may use private attributes of those libraries (tests check that too).
"""

from __future__ import annotations

import sys
from typing import Any

# LightningModule attribute that Lightning sets before and after every hook call.
HOOK_NAME_ATTRIBUTE = "_current_fx_name"


class FastHookName:
    """Mixin for a LightningModule (list it before `pl.LightningModule`): Lightning sets the
    module's `_current_fx_name` around every hook call, about 45 times per training step, and
    `nn.Module.__setattr__` first looks through parameters, buffers and submodules each time
    (about 1 us). The attribute is a plain string, so it is stored directly.
    Measured with the attribution probe's programs (near-free model, 2000 steps, paired rounds):
    without it a framework step costs 53 to 75 us more (median over rounds, three runs)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == HOOK_NAME_ATTRIBUTE:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)


def compile_count() -> int:
    """Graphs torch.compile has compiled so far in this process (0 if dynamo was never used).
    No public API counts compilations; dynamo's own counters do."""
    utils = sys.modules.get("torch._dynamo.utils")  # not imported here: it is slow to import
    return utils.counters["stats"]["unique_graphs"] if utils is not None else 0


# WandbLogger's keyword arguments for wandb.init, kept until the run starts.
WANDB_INIT_ATTRIBUTE = "_wandb_init"


def drop_wandb_anonymous(logger: Any) -> Any:
    """`logger` (a WandbLogger) without the `anonymous=None` it always passes to wandb.init: wandb
    0.31 warns that any value of that setting, None included, has no effect. No public argument
    leaves it out."""
    getattr(logger, WANDB_INIT_ATTRIBUTE).pop("anonymous", None)
    return logger
