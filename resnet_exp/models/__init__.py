"""The model zoo: one configurable ResNet (v1, v2 and the block-order ablations), pure PyTorch."""

from resnet_exp.models.complexity import complexity
from resnet_exp.models.families import list_models, resolve
from resnet_exp.models.options import ARCH_KEYS, ArchOptions, ArchSpec, BlockOrder, BlockType, Init, Shortcut, Stem
from resnet_exp.models.resnet import ResidualBlock, ResNet, ZeroPadShortcut, create_model, stage_shapes

__all__ = [
    "ARCH_KEYS", "ArchOptions", "ArchSpec", "BlockOrder", "BlockType", "Init", "ResNet", "ResidualBlock",
    "Shortcut", "Stem", "ZeroPadShortcut", "complexity", "create_model", "list_models", "resolve", "stage_shapes",
]
