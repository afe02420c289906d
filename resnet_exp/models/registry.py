"""Named variants as data, and `create_model`: name + knobs -> validated `ArchSpec` -> `ResNet`.

A family turns a depth into a layout (block type, units per stage, widths); a named arch is a
family plus a depth (and, for the v2 aliases, `block_order="pre"`). Every check raises a one-line
`ValueError("<key>=<value>: <what is allowed>")` so the config schema can reuse it verbatim.
"""

from __future__ import annotations

from fnmatch import fnmatch
from typing import Any, Callable, Dict, List, Optional, Tuple

from torch import nn

from resnet_exp.models.blocks import ActLayer, NormLayer
from resnet_exp.models.options import BlockOrder, BlockType, Shortcut, Stem, parse_enum
from resnet_exp.models.resnet import ArchSpec, ResNet

Layout = Dict[str, Any]  # block, blocks, widths, bottleneck_widths

IMAGENET_DEPTHS: Dict[int, Tuple[BlockType, List[int]]] = {
    18: (BlockType.basic, [2, 2, 2, 2]),
    34: (BlockType.basic, [3, 4, 6, 3]),
    50: (BlockType.bottleneck, [3, 4, 6, 3]),
    101: (BlockType.bottleneck, [3, 4, 23, 3]),
    152: (BlockType.bottleneck, [3, 8, 36, 3]),
    200: (BlockType.bottleneck, [3, 24, 36, 3]),
}


def _imagenet(depth: int) -> Layout:
    if depth not in IMAGENET_DEPTHS:
        allowed = ", ".join(map(str, IMAGENET_DEPTHS))
        raise ValueError(f"depth={depth}: family resnet has presets for {allowed}")
    block, blocks = IMAGENET_DEPTHS[depth]
    mids = [64, 128, 256, 512]
    widths = mids if block == BlockType.basic else [4 * m for m in mids]  # expansion 4
    return dict(block=block, blocks=blocks, widths=widths, bottleneck_widths=mids)


def _cifar(depth: int, family: str, block: BlockType, widths: List[int], mids: List[int]) -> Layout:
    # 3 stages of n units (2 or 3 convs each), plus the stem conv and the fc layer.
    k = 3 * (2 if block == BlockType.basic else 3)
    n, rest = divmod(depth - 2, k)
    if rest or n < 1:
        examples = "20, 32, 44, 56, 110, 1202" if k == 6 else "29, 56, 110, 164, 1001"
        raise ValueError(f"depth={depth}: family {family} needs {k}n+2 with n >= 1, e.g. {examples}")
    return dict(block=block, blocks=[n] * 3, widths=widths, bottleneck_widths=mids)


# family -> (layout of a depth, default depth, default shortcut)
FAMILIES: Dict[str, Tuple[Optional[Callable[[int], Layout]], Optional[int], Shortcut]] = {
    "resnet": (_imagenet, 50, Shortcut.B),
    # He et al. 2015, Sec. 4.2: 6n+2 layers, widths 16/32/64, option A.
    "cifar_resnet": (
        lambda d: _cifar(d, "cifar_resnet", BlockType.basic, [16, 32, 64], [16, 32, 64]), 20, Shortcut.A
    ),
    # He et al. 2016 (Identity Mappings): 9n+2 bottleneck nets, widths 64/128/256 (inner 16/32/64).
    "cifar_resnet_bottleneck": (
        lambda d: _cifar(d, "cifar_resnet_bottleneck", BlockType.bottleneck, [64, 128, 256], [16, 32, 64]),
        164, Shortcut.B,
    ),
    "custom": (None, None, Shortcut.B),
}

# name -> preset knobs. Families are archs too (their default depth), so `arch.depth` sweeps them.
MODELS: Dict[str, Dict[str, Any]] = {f: dict(family=f) for f in FAMILIES}
for _d in IMAGENET_DEPTHS:
    MODELS[f"resnet{_d}"] = dict(family="resnet", depth=_d)
for _d in (20, 32, 44, 56, 110, 1202):
    MODELS[f"resnet{_d}"] = dict(family="cifar_resnet", depth=_d)
for _d in (164, 1001):
    MODELS[f"resnet{_d}"] = dict(family="cifar_resnet_bottleneck", depth=_d)
for _n in [n for n in MODELS if n.startswith("resnet") and n[6:].isdigit()]:
    MODELS[f"{_n}v2"] = dict(MODELS[_n], block_order=BlockOrder.pre)

# The knobs `create_model` and the `arch` config group accept (besides name).
ARCH_KEYS = (
    "depth", "block_order", "stem", "shortcut", "block", "widths", "blocks", "bottleneck_widths",
    "strides", "width", "stride_in_1x1", "stem_kernel", "stem_stride", "stem_padding",
    "stem_width", "stem_pool", "stem_pool_padding", "zero_init_last", "drop_path",
)
STEM_KEYS = ("stem_kernel", "stem_stride", "stem_padding", "stem_width", "stem_pool", "stem_pool_padding")


def list_models(pattern: Optional[str] = None) -> List[str]:
    """Names `create_model` accepts (optionally filtered by a shell-style pattern like 'resnet*v2')."""
    return [n for n in MODELS if pattern is None or fnmatch(n, pattern)]


def family_of(name: str) -> str:
    return _preset(name)["family"]


def _preset(name: str) -> Dict[str, Any]:
    if name not in MODELS:
        raise ValueError(f"name={name}: unknown arch; one of {', '.join(MODELS)}")
    return MODELS[name]


def _int_list(key: str, value: Any, n: Optional[int], minimum: int = 1) -> Optional[List[int]]:
    """Check a per-stage list: integers >= minimum, `n` entries when n is known."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, int, float)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{key}={value}: must be a list of integers, one per stage")
    items = list(value)  # also takes omegaconf's ListConfig
    shown = "[" + ", ".join(map(str, items)) + "]"
    if not items or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in items):
        raise ValueError(f"{key}={shown}: must be a non-empty list of integers >= {minimum}")
    if n is not None and len(items) != n:
        raise ValueError(f"{key}={shown}: needs {n} entries, one per stage (as many as widths/blocks)")
    return items


def _check(cond: bool, key: str, value: Any, allowed: str) -> None:
    if not cond:
        raise ValueError(f"{key}={value}: {allowed}")


def _layout(
    family: str, knob: Dict[str, Any], explicit_depth: bool
) -> Tuple[BlockType, List[int], List[int], List[int], List[int]]:
    """(block, widths, blocks, bottleneck widths, strides) before the width multiplier."""
    layout_of, default_depth, _ = FAMILIES[family]
    lists = {k: knob[k] for k in ("widths", "blocks", "bottleneck_widths", "strides")}
    if layout_of is None:
        _check(not explicit_depth, "depth", knob["depth"],
               "custom nets take widths and blocks lists, not depth")
        for key in ("widths", "blocks"):
            _check(lists[key] is not None, key, None,
                   "required for name=custom (a list, one entry per stage)")
        layout: Layout = {}
    else:
        depth = knob["depth"] if knob["depth"] is not None else default_depth
        _check(isinstance(depth, int) and not isinstance(depth, bool), "depth", depth,
               "must be an integer")
        # Units per stage given directly: a preset's depth yields to them, an explicit one conflicts.
        _check(not (explicit_depth and lists["blocks"] is not None), "blocks", lists["blocks"],
               "give depth or blocks, not both")
        layout = layout_of(depth)
    block = parse_enum(BlockType, "block", knob["block"] or layout.get("block", BlockType.basic))
    first = next(v for v in (lists["widths"], lists["blocks"], layout.get("widths")) if v is not None)
    n = len(list(first))
    widths = _int_list("widths", lists["widths"], n) or layout["widths"]
    blocks = _int_list("blocks", lists["blocks"], n) or layout["blocks"]
    _check(len(blocks) == n, "blocks", blocks, f"needs {n} entries, one per stage (as many as widths)")
    mids = _int_list("bottleneck_widths", lists["bottleneck_widths"], n)
    if block == BlockType.basic:
        _check(mids is None, "bottleneck_widths", mids, "only used with block=bottleneck")
        mids = list(widths)
    elif mids is None:
        # A layout's inner widths fit only its own output widths; otherwise expansion 4.
        own = layout and lists["widths"] is None and layout["block"] == BlockType.bottleneck
        mids = layout["bottleneck_widths"] if own else [max(1, w // 4) for w in widths]
    strides = _int_list("strides", lists["strides"], n) or [1] + [2] * (n - 1)
    return block, widths, blocks, mids, strides


def _stem(knob: Dict[str, Any], family: str, input_size: Optional[int], default_width: int,
          scale: Callable[[int], int]) -> Dict[str, Any]:
    """The stem fields of ArchSpec."""
    stem = parse_enum(Stem, "stem", knob["stem"] or Stem.auto)
    if stem != Stem.custom:
        for key in STEM_KEYS:
            _check(knob[key] is None, key, knob[key], f"only used with stem=custom (stem={stem.value})")
    if stem == Stem.auto:
        # Small images keep their resolution: a 7x7/2 stem + pool would leave 32 px at 1x1.
        big = input_size > 64 if input_size is not None else not family.startswith("cifar")
        stem = Stem.imagenet if big else Stem.cifar
    if stem == Stem.custom:
        kernel = 3 if knob["stem_kernel"] is None else knob["stem_kernel"]
        stride = 1 if knob["stem_stride"] is None else knob["stem_stride"]
        pool = bool(knob["stem_pool"])
        for key, v in (("stem_kernel", kernel), ("stem_stride", stride)):
            _check(isinstance(v, int) and v >= 1, key, v, "must be an integer >= 1")
    else:
        kernel, stride, pool = (7, 2, True) if stem == Stem.imagenet else (3, 1, False)
    padding = kernel // 2 if knob["stem_padding"] is None else knob["stem_padding"]
    _check(isinstance(padding, int) and padding >= 0, "stem_padding", padding, "must be an integer >= 0")
    pool_padding = 1 if knob["stem_pool_padding"] is None else knob["stem_pool_padding"]
    _check(pool_padding in (0, 1), "stem_pool_padding", pool_padding, "must be 0 or 1 (3x3 max-pool)")
    width = knob["stem_width"]
    if width is not None:
        _check(isinstance(width, int) and width >= 1, "stem_width", width, "must be an integer >= 1")
    return dict(stem_kernel=kernel, stem_stride=stride, stem_padding=padding, stem_pool=pool,
                stem_pool_padding=pool_padding,
                stem_width=default_width if width is None else scale(width))


def resolve(name: str, input_size: Optional[int] = None, **arch: Any) -> ArchSpec:
    """Validate `name` + knobs and return the resolved spec (no modules are built)."""
    for key in arch:
        _check(key in ARCH_KEYS, key, arch[key], f"unknown arch option; one of {', '.join(ARCH_KEYS)}")
    preset = _preset(name)
    family = preset["family"]
    # Knobs left at None take the preset's value (v2 aliases: block_order), then the defaults.
    knob = {k: arch.get(k) if arch.get(k) is not None else preset.get(k) for k in ARCH_KEYS}
    block, widths, blocks, mids, strides = _layout(family, knob, arch.get("depth") is not None)

    width = 1.0 if knob["width"] is None else knob["width"]
    _check(isinstance(width, (int, float)) and not isinstance(width, bool) and width > 0,
           "width", width, "must be a number > 0")
    drop_path = 0.0 if knob["drop_path"] is None else knob["drop_path"]
    _check(isinstance(drop_path, (int, float)) and 0.0 <= drop_path < 1.0, "drop_path", drop_path,
           "must be in [0, 1)")
    order = parse_enum(BlockOrder, "block_order", knob["block_order"] or BlockOrder.post)
    shortcut = parse_enum(Shortcut, "shortcut", knob["shortcut"] or FAMILIES[family][2])
    if input_size is not None:
        _check(isinstance(input_size, int) and input_size > 0, "input_size", input_size,
               "must be a positive integer")

    def scale(c: int) -> int:
        return max(1, int(c * width + 0.5))  # at least one channel, round half up

    widths, mids = [scale(c) for c in widths], [scale(c) for c in mids]
    # The stem feeds the first unit: as wide as its inner width (64 for ImageNet, 16 for CIFAR).
    stem = _stem(knob, family, input_size, mids[0] if block == BlockType.bottleneck else widths[0], scale)
    if shortcut == Shortcut.A:
        chans = [stem["stem_width"]] + widths
        _check(all(b >= a for a, b in zip(chans, chans[1:])), "shortcut", "A",
               f"zero-padding cannot shrink channels {chans}; use B or C")
    return ArchSpec(
        name=name, family=family, block=block, widths=tuple(widths), blocks=tuple(blocks),
        bottleneck_widths=tuple(mids), strides=tuple(strides), block_order=order, shortcut=shortcut,
        stride_in_1x1=bool(knob["stride_in_1x1"]), zero_init_last=bool(knob["zero_init_last"]),
        drop_path=float(drop_path), **stem,
    )


def create_model(
    name: str,
    num_classes: int = 1000,
    in_channels: int = 3,
    input_size: Optional[int] = None,
    norm_layer: NormLayer = nn.BatchNorm2d,
    act_layer: ActLayer = nn.ReLU,
    **arch: Any,
) -> ResNet:
    """Build a named arch; `arch` takes the keys of `conf/arch/*.yaml` (see `ARCH_KEYS`).

    `input_size` (image side in px) lets `stem="auto"` pick the CIFAR stem for <= 64 px.
    Enum members and plain strings are both accepted. Bad input raises a one-line ValueError.
    """
    _check(isinstance(num_classes, int) and num_classes >= 0, "num_classes", num_classes,
           "must be an integer >= 0")
    _check(isinstance(in_channels, int) and in_channels >= 1, "in_channels", in_channels,
           "must be an integer >= 1")
    spec = resolve(name, input_size=input_size, **arch)
    return ResNet(spec, num_classes=num_classes, in_channels=in_channels,
                  norm_layer=norm_layer, act_layer=act_layer)
