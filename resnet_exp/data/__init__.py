"""The data layer: datasets in their original formats, splits, augmentation and two loader paths.

`ImageDataModule` loads lazily, so that the option rules (`data.options`, which the config schema
uses) import without torch and Lightning.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ImageDataModule"]


def __getattr__(name: str) -> Any:
    if name == "ImageDataModule":
        from resnet_exp.data.datamodule import ImageDataModule

        return ImageDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
