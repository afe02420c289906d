"""The zoo's families and named archs as data, torch-free (the sweep report reads them too): a family
turns a depth into stages; a named arch is a family, a depth and a block order (v2: `pre`)."""

from __future__ import annotations

from dataclasses import dataclass

from resnet_exp.errors import require
from resnet_exp.models.options import BlockOrder, BlockType, Shortcut

# He et al. 2015, Table 1: units per stage (basic blocks below 50 layers), stages 64/128/256/512 wide inside.
IMAGENET_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3),
                   200: (3, 24, 36, 3)}
IMAGENET_INNER_WIDTHS = (64, 128, 256, 512)


@dataclass(frozen=True)
class Layout:
    """The stages of a net before the width multiplier."""

    block: BlockType
    blocks: tuple[int, ...]
    widths: tuple[int, ...]
    bottleneck_widths: tuple[int, ...]


@dataclass(frozen=True)
class Family:
    """Defaults of a family. CIFAR families repeat the units of `stages` (one per stage) n times;
    `resnet` takes its stages from IMAGENET_BLOCKS; `custom` has none."""

    default_depth: int | None
    shortcut: Shortcut
    stages: Layout | None = None
    depth_examples: str = ""


FAMILIES: dict[str, Family] = {
    "resnet": Family(50, Shortcut.B),
    # He et al. 2015, Sec. 4.2: 6n+2 layers, widths 16/32/64, option A.
    "cifar_resnet": Family(20, Shortcut.A, Layout(BlockType.basic, (1, 1, 1), (16, 32, 64), (16, 32, 64)),
                           "20, 32, 44, 56, 110, 1202"),
    # He et al. 2016 (Identity Mappings): 9n+2 bottleneck nets, widths 64/128/256 (inner 16/32/64).
    "cifar_resnet_bottleneck": Family(164, Shortcut.B, Layout(BlockType.bottleneck, (1, 1, 1), (64, 128, 256),
                                                              (16, 32, 64)), "29, 56, 110, 164, 1001"),
    "custom": Family(None, Shortcut.B),
}


@dataclass(frozen=True)
class Preset:
    """A named arch: its family, depth (None: the family's default) and block order."""

    family: str
    depth: int | None = None
    block_order: BlockOrder = BlockOrder.post


# Families are archs too (at their default depth), so `arch.depth` sweeps them.
PRESETS: dict[str, Preset] = {f: Preset(f) for f in FAMILIES}
PRESETS.update({f"resnet{d}": Preset("resnet", d) for d in IMAGENET_BLOCKS})
PRESETS.update({f"resnet{d}": Preset("cifar_resnet", d) for d in (20, 32, 44, 56, 110, 1202)})
PRESETS.update({f"resnet{d}": Preset("cifar_resnet_bottleneck", d) for d in (164, 1001)})
PRESETS.update({f"{name}v2": Preset(p.family, p.depth, BlockOrder.pre)
                for name, p in list(PRESETS.items()) if p.depth is not None})


def convs_per_unit(block: BlockType | str) -> int:
    return 2 if BlockType(block) == BlockType.basic else 3


def layout_depth(block: BlockType | str, blocks: tuple[int, ...] | list[int]) -> int:
    """Weighted layers on the longest path: the convs of every unit, the stem conv and fc."""
    return convs_per_unit(block) * sum(blocks) + 2


def preset(name: str) -> Preset:
    require(name in PRESETS, "name", name, "unknown arch; one of " + ", ".join(PRESETS))
    return PRESETS[name]


def preset_depth(name: str) -> int | None:
    """The depth of a named arch as built without `depth` or `blocks` (None for `custom`)."""
    p = preset(name)
    return p.depth if p.depth is not None else FAMILIES[p.family].default_depth


def layout(family: str, depth: int) -> Layout:
    """The stages of `family` at `depth`; a one-line `depth=...` error for a depth it cannot have."""
    stages = FAMILIES[family].stages
    require(family != "custom", "depth", depth, "custom nets take widths and blocks lists, not depth")
    require(isinstance(depth, int) and not isinstance(depth, bool), "depth", depth, "must be an integer")
    if stages is None:  # resnet
        require(depth in IMAGENET_BLOCKS, "depth", depth,
                "family resnet has presets for " + ", ".join(map(str, IMAGENET_BLOCKS)))
        mids = IMAGENET_INNER_WIDTHS
        if depth < 50:
            return Layout(BlockType.basic, IMAGENET_BLOCKS[depth], mids, mids)
        return Layout(BlockType.bottleneck, IMAGENET_BLOCKS[depth], tuple(4 * m for m in mids), mids)
    k = len(stages.blocks) * convs_per_unit(stages.block)  # stages of n units, plus the stem conv and fc
    n, rest = divmod(depth - 2, k)
    require(rest == 0 and n >= 1, "depth", depth,
            f"family {family} needs {k}n+2 with n >= 1, e.g. {FAMILIES[family].depth_examples}")
    return Layout(stages.block, tuple(n * b for b in stages.blocks), stages.widths, stages.bottleneck_widths)
