"""`create_model`: a name + knobs -> validated `ArchSpec` -> `ResNet`. Every check raises the one-line
`ConfigError("<key>=<value>: <what is allowed>")` (a ValueError), which the config schema reuses verbatim."""

from __future__ import annotations

from collections.abc import Callable
from fnmatch import fnmatch
from typing import Any

from torch import nn

from resnet_exp.errors import parse_enum, require
from resnet_exp.models.blocks import ActLayer, NormLayer
from resnet_exp.models.families import FAMILIES, PRESETS, layout, layout_depth, preset, preset_depth
from resnet_exp.models.options import CUSTOM_STEM_KEYS, ArchSpec, BlockOrder, BlockType, Init, Shortcut, Stem, knobs
from resnet_exp.models.resnet import ResNet


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def list_models(pattern: str | None = None) -> list[str]:
    """Names `create_model` accepts (optionally filtered by a shell-style pattern like 'resnet*v2')."""
    return [n for n in PRESETS if pattern is None or fnmatch(n, pattern)]


def _int_list(key: str, value: Any, n: int) -> list[int] | None:
    """Check a per-stage list: `n` integers >= 1."""
    if value is None:
        return None
    require(not isinstance(value, (str, bytes, int, float)) and hasattr(value, "__iter__"), key, value,
            "must be a list of integers, one per stage")
    items = list(value)  # also takes omegaconf's ListConfig
    shown = "[" + ", ".join(map(str, items)) + "]"
    require(bool(items) and all(_is_int(v) and v >= 1 for v in items), key, shown,
            "must be a non-empty list of integers >= 1")
    require(len(items) == n, key, shown, f"needs {n} entries, one per stage (as many as widths/blocks)")
    return items


def _stages(family: str, knob: dict[str, Any], depth: int | None) -> dict[str, Any]:
    """block, widths, blocks, bottleneck_widths and strides before the width multiplier: the family's
    layout at `depth` (None: custom), each list given taking the place of its own."""
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
    return dict(block=block, widths=widths, blocks=blocks, bottleneck_widths=mids, strides=strides)


def _stem(knob: dict[str, Any], family: str, input_size: int | None, default_width: int,
          scale: Callable[[int], int]) -> dict[str, Any]:
    """The stem fields of ArchSpec."""
    stem = parse_enum(Stem, "stem", knob["stem"])
    if stem != Stem.custom:
        for key in CUSTOM_STEM_KEYS:
            require(knob[key] is None, key, knob[key], f"only used with stem=custom (stem={stem.value})")
    if stem == Stem.auto:  # small images keep their resolution: a 7x7/2 stem + pool would leave 32 px at 1x1
        big = input_size > 64 if input_size is not None else not family.startswith("cifar")
        stem = Stem.imagenet if big else Stem.cifar
    if stem == Stem.custom:
        kernel = 3 if knob["stem_kernel"] is None else knob["stem_kernel"]
        stride = 1 if knob["stem_stride"] is None else knob["stem_stride"]
        pool = bool(knob["stem_pool"])
        for key, v in (("stem_kernel", kernel), ("stem_stride", stride)):
            require(isinstance(v, int) and v >= 1, key, v, "must be an integer >= 1")
    else:
        kernel, stride, pool = (7, 2, True) if stem == Stem.imagenet else (3, 1, False)
    padding = kernel // 2 if knob["stem_padding"] is None else knob["stem_padding"]
    require(isinstance(padding, int) and padding >= 0, "stem_padding", padding, "must be an integer >= 0")
    pool_padding = 1 if knob["stem_pool_padding"] is None else knob["stem_pool_padding"]
    require(pool_padding in (0, 1), "stem_pool_padding", pool_padding, "must be 0 or 1 (3x3 max-pool)")
    width = knob["stem_width"]
    require(width is None or (isinstance(width, int) and width >= 1), "stem_width", width, "must be an integer >= 1")
    return dict(stem=stem, stem_kernel=kernel, stem_stride=stride, stem_padding=padding, stem_pool=pool,
                stem_pool_padding=pool_padding, stem_width=default_width if width is None else scale(width))


def resolve(name: str, input_size: int | None = None, **arch: Any) -> ArchSpec:
    """Validate `name` + knobs and return the resolved spec (no modules are built)."""
    knob = knobs(arch)
    named = preset(name)
    stages = _stages(named.family, knob, knob["depth"] if knob["depth"] is not None else preset_depth(name))
    order = parse_enum(BlockOrder, "block_order", knob["block_order"] or named.block_order)
    shortcut = parse_enum(Shortcut, "shortcut", knob["shortcut"] or FAMILIES[named.family].shortcut)
    init = parse_enum(Init, "init", knob["init"])
    require(input_size is None or (isinstance(input_size, int) and input_size > 0), "input_size", input_size,
            "must be a positive integer")

    def scale(c: int) -> int:
        return max(1, int(c * knob["width"] + 0.5))  # at least one channel, round half up

    widths, mids = tuple(map(scale, stages["widths"])), tuple(map(scale, stages["bottleneck_widths"]))
    # The stem feeds the first unit: as wide as its inner width (64 for ImageNet, 16 for CIFAR).
    stem = _stem(knob, named.family, input_size, mids[0] if stages["block"] == BlockType.bottleneck else widths[0],
                 scale)
    if shortcut == Shortcut.A:
        chans = [stem["stem_width"], *widths]
        require(all(b >= a for a, b in zip(chans, chans[1:])), "shortcut", "A",
                f"zero-padding cannot shrink channels {chans}; use B or C")
    resolved = dict(stages, **stem, widths=widths, bottleneck_widths=mids, blocks=tuple(stages["blocks"]),
                    strides=tuple(stages["strides"]), depth=layout_depth(stages["block"], stages["blocks"]),
                    block_order=order, shortcut=shortcut, init=init,
                    **{k: float(knob[k]) for k in ("width", "drop_path", "norm_eps", "norm_momentum")})
    return ArchSpec(**{**knob, **resolved}, name=name, family=named.family)


def create_model(name: str, num_classes: int = 1000, in_channels: int = 3, input_size: int | None = None,
                 norm_layer: NormLayer | None = None, act_layer: ActLayer = nn.ReLU, **arch: Any) -> ResNet:
    """Build a named arch with the knobs of `ArchOptions` (`conf/arch/*.yaml`'s keys); `input_size` (px) lets
    `stem="auto"` choose, `norm_layer` replaces the BatchNorm. Bad input raises a one-line ConfigError."""
    require(isinstance(num_classes, int) and num_classes >= 0, "num_classes", num_classes, "must be an integer >= 0")
    require(isinstance(in_channels, int) and in_channels >= 1, "in_channels", in_channels, "must be an integer >= 1")
    spec = resolve(name, input_size=input_size, **arch)
    return ResNet(spec, num_classes=num_classes, in_channels=in_channels, norm_layer=norm_layer, act_layer=act_layer)
