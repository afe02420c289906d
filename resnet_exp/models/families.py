"""The zoo's families and named archs as data, torch-free (the sweep report reads them too): a family
turns a depth into stages; a named arch is a family, a depth and a block order (v2: `pre`)."""

from __future__ import annotations

from dataclasses import dataclass

from resnet_exp.errors import require
from resnet_exp.models.options import BlockOrder, BlockType, Shortcut

# He et al. 2015, Table 1: depth -> (block, units per stage); stages 64/128/256/512 wide inside.
IMAGENET_DEPTHS: dict[int, tuple[BlockType, tuple[int, ...]]] = {
    18: (BlockType.basic, (2, 2, 2, 2)),
    34: (BlockType.basic, (3, 4, 6, 3)),
    50: (BlockType.bottleneck, (3, 4, 6, 3)),
    101: (BlockType.bottleneck, (3, 4, 23, 3)),
    152: (BlockType.bottleneck, (3, 8, 36, 3)),
    200: (BlockType.bottleneck, (3, 24, 36, 3)),
}
IMAGENET_INNER_WIDTHS = (64, 128, 256, 512)
BOTTLENECK_EXPANSION = 4


@dataclass(frozen=True)
class Family:
    """Defaults of a family. CIFAR families: three equal stages of `block`; `resnet` takes its stages
    from IMAGENET_DEPTHS; `custom` has none."""

    default_depth: int | None
    shortcut: Shortcut
    block: BlockType | None = None
    widths: tuple[int, ...] = ()
    bottleneck_widths: tuple[int, ...] = ()
    depth_examples: str = ""


FAMILIES: dict[str, Family] = {
    "resnet": Family(50, Shortcut.B),
    # He et al. 2015, Sec. 4.2: 6n+2 layers, widths 16/32/64, option A.
    "cifar_resnet": Family(20, Shortcut.A, BlockType.basic, (16, 32, 64), (16, 32, 64),
                           "20, 32, 44, 56, 110, 1202"),
    # He et al. 2016 (Identity Mappings): 9n+2 bottleneck nets, widths 64/128/256 (inner 16/32/64).
    "cifar_resnet_bottleneck": Family(164, Shortcut.B, BlockType.bottleneck, (64, 128, 256), (16, 32, 64),
                                      "29, 56, 110, 164, 1001"),
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
PRESETS.update({f"resnet{d}": Preset("resnet", d) for d in IMAGENET_DEPTHS})
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


@dataclass(frozen=True)
class Layout:
    """The stages of a family at one depth, before the width multiplier."""

    block: BlockType
    blocks: tuple[int, ...]
    widths: tuple[int, ...]
    bottleneck_widths: tuple[int, ...]


def layout(family: str, depth: int) -> Layout:
    """The stages of `family` at `depth`; a one-line `depth=...` error for a depth it cannot have."""
    fam = FAMILIES[family]
    if family == "resnet":
        require(depth in IMAGENET_DEPTHS, "depth", depth,
                "family resnet has presets for " + ", ".join(map(str, IMAGENET_DEPTHS)))
        block, blocks = IMAGENET_DEPTHS[depth]
        mids = IMAGENET_INNER_WIDTHS
        widths = mids if block == BlockType.basic else tuple(BOTTLENECK_EXPANSION * m for m in mids)
        return Layout(block, blocks, widths, mids)
    require(fam.block is not None, "depth", depth, "custom nets take widths and blocks lists, not depth")
    k = len(fam.widths) * convs_per_unit(fam.block)  # stages of n units, plus the stem conv and fc
    n, rest = divmod(depth - 2, k)
    require(rest == 0 and n >= 1, "depth", depth,
            f"family {family} needs {k}n+2 with n >= 1, e.g. {fam.depth_examples}")
    return Layout(fam.block, (n,) * len(fam.widths), fam.widths, fam.bottleneck_widths)
