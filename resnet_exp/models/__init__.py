"""The model zoo: one configurable ResNet (v1, v2 and the block-order ablations), pure PyTorch.

The names below load lazily, so that the torch-free tables (`models.options`, `models.families`)
can be imported without torch (the sweep report reads them).
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "DropPath": "blocks", "ResidualBlock": "blocks", "ZeroPadShortcut": "blocks",
    "complexity": "complexity",
    "BlockOrder": "options", "BlockType": "options", "Shortcut": "options", "Stem": "options",
    "ARCH_KEYS": "registry", "create_model": "registry", "list_models": "registry", "resolve": "registry",
    "ArchSpec": "resnet", "ResNet": "resnet", "stage_shapes": "resnet",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
