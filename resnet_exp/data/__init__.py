"""The data layer: datasets in their original formats, splits, augmentation and two loader paths."""

from resnet_exp.data.datamodule import ImageDataModule

__all__ = ["ImageDataModule"]
