"""Names to `ArchSpec`: a family turns a depth into stages, a named arch is a family, a depth and a block order
(v2: `pre`); `resolve` checks a name and its knobs, raising one-line `ConfigError("<key>=<value>: <allowed>")`s."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatch
from typing import Any

from resnet_exp.errors import parse_enum, require
from resnet_exp.models.options import CUSTOM_STEM_KEYS, ArchSpec, BlockOrder, BlockType, Init, Shortcut, Stem, knobs

# He et al. 2015, Table 1: units per stage (basic blocks below 50 layers), stages 64/128/256/512 wide inside.
IMAGENET_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3),
                   200: (3, 24, 36, 3)}


@dataclass(frozen=True)
class Layout:
    """The stages of a net before the width multiplier."""

    block: BlockType
    blocks: tuple[int, ...]
    widths: tuple[int, ...]
    bottleneck_widths: tuple[int, ...]


@dataclass(frozen=True)
class Family:
    """A family's defaults; CIFAR families repeat each unit of `stages` n times, resnet has IMAGENET_BLOCKS."""

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


def layout_depth(block: BlockType | str, blocks: tuple[int, ...] | list[int]) -> int:
    """Weighted layers on the longest path: the convs of every unit, the stem conv and fc."""
    return (2 if BlockType(block) == BlockType.basic else 3) * sum(blocks) + 2


def list_models(pattern: str | None = None) -> list[str]:
    """Names `create_model` accepts (optionally filtered by a shell-style pattern like 'resnet*v2')."""
    return [n for n in PRESETS if pattern is None or fnmatch(n, pattern)]


def preset_depth(name: str) -> int | None:
    """The depth of a named arch as built without `depth` or `blocks` (None for `custom`)."""
    p = PRESETS[name]
    return p.depth if p.depth is not None else FAMILIES[p.family].default_depth


def layout(family: str, depth: int) -> Layout:
    """The stages of `family` at `depth`; a one-line `depth=...` error for a depth it cannot have."""
    stages = FAMILIES[family].stages
    require(family != "custom", "depth", depth, "custom nets take widths and blocks lists, not depth")
    require(type(depth) is int, "depth", depth, "must be an integer")  # not a bool
    if stages is None:  # resnet
        require(depth in IMAGENET_BLOCKS, "depth", depth,
                "family resnet has presets for " + ", ".join(map(str, IMAGENET_BLOCKS)))
        mids, expansion = (64, 128, 256, 512), 1 if depth < 50 else 4
        block = BlockType.basic if depth < 50 else BlockType.bottleneck
        return Layout(block, IMAGENET_BLOCKS[depth], tuple(expansion * m for m in mids), mids)
    k = layout_depth(stages.block, stages.blocks) - 2  # the convs of one unit per stage; n units each
    n, rest = divmod(depth - 2, k)
    require(rest == 0 and n >= 1, "depth", depth,
            f"family {family} needs {k}n+2 with n >= 1, e.g. {FAMILIES[family].depth_examples}")
    return Layout(stages.block, tuple(n * b for b in stages.blocks), stages.widths, stages.bottleneck_widths)


def _int_list(key: str, value: Any, n: int) -> list[int] | None:
    """Check a per-stage list: `n` integers >= 1."""
    if value is None:
        return None
    require(not isinstance(value, (str, bytes, int, float)) and hasattr(value, "__iter__"), key, value,
            "must be a list of integers, one per stage")
    items = list(value)  # also takes omegaconf's ListConfig
    shown = "[" + ", ".join(map(str, items)) + "]"
    require(bool(items) and all(type(v) is int and v >= 1 for v in items), key, shown,
            "must be a non-empty list of integers >= 1")
    require(len(items) == n, key, shown, f"needs {n} entries, one per stage (as many as widths/blocks)")
    return items


def _stages(family: str, knob: dict[str, Any], depth: int | None, scale: Callable[[int], int]) -> dict[str, Any]:
    """The stage fields of ArchSpec: the family's layout at `depth` (None: custom), overridden by the lists given."""
    base = layout(family, depth) if depth is not None else None
    # Units per stage given directly: a preset's depth yields to them, an explicit one conflicts.
    require(knob["depth"] is None or knob["blocks"] is None, "blocks", knob["blocks"], "give depth or blocks, not both")
    for key in ("widths", "blocks"):
        require(base is not None or knob[key] is not None, key, None,
                "required for name=custom (a list, one entry per stage)")
    block = parse_enum(BlockType, "block", knob["block"] or (base.block if base else BlockType.basic))
    n = len(list(next(v for v in (knob["widths"], knob["blocks"], base and base.widths) if v is not None)))
    widths = _int_list("widths", knob["widths"], n) or list(base.widths)
    blocks = _int_list("blocks", knob["blocks"], n) or list(base.blocks)
    require(len(blocks) == n, "blocks", blocks, f"needs {n} entries, one per stage (as many as widths)")
    mids = _int_list("bottleneck_widths", knob["bottleneck_widths"], n)
    if block == BlockType.basic:
        require(mids is None, "bottleneck_widths", mids, "only used with block=bottleneck")
        mids = widths
    elif mids is None:  # a layout's inner widths fit only its own output widths; otherwise expansion 4
        own = base is not None and knob["widths"] is None and base.block == BlockType.bottleneck
        mids = list(base.bottleneck_widths) if own else [max(1, w // 4) for w in widths]
    strides = _int_list("strides", knob["strides"], n) or [1] + [2] * (n - 1)
    return dict(block=block, widths=tuple(map(scale, widths)), blocks=tuple(blocks), strides=tuple(strides),
                bottleneck_widths=tuple(map(scale, mids)), depth=layout_depth(block, blocks))


def _stem(knob: dict[str, Any], family: str, input_size: int | None, default_width: int,
          scale: Callable[[int], int]) -> dict[str, Any]:
    """The stem fields of ArchSpec: the stem's own values, or for stem=custom each custom knob given."""
    stem = parse_enum(Stem, "stem", knob["stem"])
    for key in CUSTOM_STEM_KEYS:
        require(stem == Stem.custom or knob[key] is None, key, knob[key],
                f"only used with stem=custom (stem={stem.value})")
    if stem == Stem.auto:  # small images keep their resolution: a 7x7/2 stem + pool would leave 32 px at 1x1
        big = input_size > 64 if input_size is not None else not family.startswith("cifar")
        stem = Stem.imagenet if big else Stem.cifar
    kernel, stride, pool = (7, 2, True) if stem == Stem.imagenet else (3, 1, False)  # also custom's defaults
    out = dict(stem=stem, stem_kernel=kernel, stem_stride=stride, stem_pool=pool, stem_pool_padding=1, stem_width=None)
    out.update({key: knob[key] for key in CUSTOM_STEM_KEYS if knob[key] is not None})
    out.setdefault("stem_padding", out["stem_kernel"] // 2)
    for key, low in (("stem_kernel", 1), ("stem_stride", 1), ("stem_padding", 0)):
        require(isinstance(out[key], int) and out[key] >= low, key, out[key], f"must be an integer >= {low}")
    pool_padding, width = out["stem_pool_padding"], out["stem_width"]
    require(pool_padding in (0, 1), "stem_pool_padding", pool_padding, "must be 0 or 1 (3x3 max-pool)")
    require(width is None or (isinstance(width, int) and width >= 1), "stem_width", width, "must be an integer >= 1")
    return dict(out, stem_pool=bool(out["stem_pool"]), stem_width=default_width if width is None else scale(width))


def resolve(name: str, input_size: int | None = None, **arch: Any) -> ArchSpec:
    """Validate `name` + knobs and return the resolved spec (no modules are built)."""
    knob = knobs(arch)
    require(name in PRESETS, "name", name, "unknown arch; one of " + ", ".join(PRESETS))
    named = PRESETS[name]
    require(input_size is None or (isinstance(input_size, int) and input_size > 0), "input_size", input_size,
            "must be a positive integer")

    def scale(c: int) -> int:
        return max(1, int(c * knob["width"] + 0.5))  # at least one channel, round half up

    stages = _stages(named.family, knob, knob["depth"] if knob["depth"] is not None else preset_depth(name), scale)
    # The stem feeds the first unit: as wide as its inner width (64 for ImageNet, 16 for CIFAR).
    first_width = stages["bottleneck_widths" if stages["block"] == BlockType.bottleneck else "widths"][0]
    spec = dict(knob, **stages, **_stem(knob, named.family, input_size, first_width, scale),
                block_order=parse_enum(BlockOrder, "block_order", knob["block_order"] or named.block_order),
                shortcut=parse_enum(Shortcut, "shortcut", knob["shortcut"] or FAMILIES[named.family].shortcut),
                init=parse_enum(Init, "init", knob["init"]),
                **{k: float(knob[k]) for k in ("width", "drop_path", "norm_eps", "norm_momentum")})
    if spec["shortcut"] == Shortcut.A:
        chans = [spec["stem_width"], *spec["widths"]]
        require(all(b >= a for a, b in zip(chans, chans[1:])), "shortcut", "A",
                f"zero-padding cannot shrink channels {chans}; use B or C")
    return ArchSpec(**spec, name=name, family=named.family)
