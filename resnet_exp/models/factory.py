"""`create_model`: a name + knobs -> validated `ArchSpec` -> `ResNet`. Every check raises the one-line
`ConfigError("<key>=<value>: <what is allowed>")` (a ValueError), which the config schema reuses verbatim.
"""

from __future__ import annotations

from collections.abc import Callable
from fnmatch import fnmatch
from typing import Any

from torch import nn

from resnet_exp.errors import parse_enum, require
from resnet_exp.models.blocks import ActLayer, NormLayer
from resnet_exp.models.families import FAMILIES, PRESETS, layout, preset
from resnet_exp.models.options import CUSTOM_STEM_KEYS, SWITCHES, BlockOrder, BlockType, Init, Shortcut, Stem, knobs
from resnet_exp.models.resnet import ArchSpec, ResNet


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def list_models(pattern: str | None = None) -> list[str]:
    """Names `create_model` accepts (optionally filtered by a shell-style pattern like 'resnet*v2')."""
    return [n for n in PRESETS if pattern is None or fnmatch(n, pattern)]


def _int_list(key: str, value: Any, n: int | None, minimum: int = 1) -> list[int] | None:
    """Check a per-stage list: integers >= minimum, `n` entries when n is known."""
    if value is None:
        return None
    require(not isinstance(value, (str, bytes, int, float)) and hasattr(value, "__iter__"), key, value,
            "must be a list of integers, one per stage")
    items = list(value)  # also takes omegaconf's ListConfig
    shown = "[" + ", ".join(map(str, items)) + "]"
    require(bool(items) and all(_is_int(v) and v >= minimum for v in items), key, shown,
            f"must be a non-empty list of integers >= {minimum}")
    require(n is None or len(items) == n, key, shown, f"needs {n} entries, one per stage (as many as widths/blocks)")
    return items


def _layout(family: str, knob: dict[str, Any], explicit_depth: bool
            ) -> tuple[BlockType, list[int], list[int], list[int], list[int]]:
    """(block, widths, blocks, bottleneck widths, strides) before the width multiplier."""
    lists = {k: knob[k] for k in ("widths", "blocks", "bottleneck_widths", "strides")}
    default_depth = FAMILIES[family].default_depth
    if default_depth is None:  # custom
        require(not explicit_depth, "depth", knob["depth"], "custom nets take widths and blocks lists, not depth")
        for key in ("widths", "blocks"):
            require(lists[key] is not None, key, None, "required for name=custom (a list, one entry per stage)")
        preset_layout = None
    else:
        depth = knob["depth"] if knob["depth"] is not None else default_depth
        require(_is_int(depth), "depth", depth, "must be an integer")
        # Units per stage given directly: a preset's depth yields to them, an explicit one conflicts.
        require(not (explicit_depth and lists["blocks"] is not None), "blocks", lists["blocks"],
                "give depth or blocks, not both")
        preset_layout = layout(family, depth)
    block = parse_enum(BlockType, "block", knob["block"] or (preset_layout.block if preset_layout else BlockType.basic))
    first = next(v for v in (lists["widths"], lists["blocks"], preset_layout and preset_layout.widths) if v is not None)
    n = len(list(first))
    widths = _int_list("widths", lists["widths"], n) or list(preset_layout.widths)
    blocks = _int_list("blocks", lists["blocks"], n) or list(preset_layout.blocks)
    require(len(blocks) == n, "blocks", blocks, f"needs {n} entries, one per stage (as many as widths)")
    mids = _int_list("bottleneck_widths", lists["bottleneck_widths"], n)
    if block == BlockType.basic:
        require(mids is None, "bottleneck_widths", mids, "only used with block=bottleneck")
        mids = list(widths)
    elif mids is None:  # a layout's inner widths fit only its own output widths; otherwise expansion 4
        own = preset_layout is not None and lists["widths"] is None and preset_layout.block == BlockType.bottleneck
        mids = list(preset_layout.bottleneck_widths) if own else [max(1, w // 4) for w in widths]
    strides = _int_list("strides", lists["strides"], n) or [1] + [2] * (n - 1)
    return block, widths, blocks, mids, strides


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
    return dict(stem_kernel=kernel, stem_stride=stride, stem_padding=padding, stem_pool=pool,
                stem_pool_padding=pool_padding, stem_width=default_width if width is None else scale(width))


def resolve(name: str, input_size: int | None = None, **arch: Any) -> ArchSpec:
    """Validate `name` + knobs and return the resolved spec (no modules are built)."""
    knob = knobs(arch)  # depth and block_order left out: the preset's
    named = preset(name)
    family = named.family
    knob["depth"] = knob["depth"] if knob["depth"] is not None else named.depth
    knob["block_order"] = knob["block_order"] or named.block_order
    block, widths, blocks, mids, strides = _layout(family, knob, arch.get("depth") is not None)

    width, drop_path, eps, momentum = knob["width"], knob["drop_path"], knob["norm_eps"], knob["norm_momentum"]
    require(_is_number(width) and width > 0, "width", width, "must be a number > 0")
    require(isinstance(drop_path, (int, float)) and 0.0 <= drop_path < 1.0, "drop_path", drop_path, "must be in [0, 1)")
    order = parse_enum(BlockOrder, "block_order", knob["block_order"] or BlockOrder.post)
    shortcut = parse_enum(Shortcut, "shortcut", knob["shortcut"] or FAMILIES[family].shortcut)
    init = parse_enum(Init, "init", knob["init"])
    require(_is_number(eps) and eps > 0, "norm_eps", eps, "must be a number > 0")
    require(_is_number(momentum) and 0 <= momentum <= 1, "norm_momentum", momentum,
            "must be in [0, 1] (PyTorch's convention: 1 - TF's decay)")
    switches = {k: knob[k] for k in SWITCHES}
    for key, value in switches.items():
        require(value is None or isinstance(value, bool), key, value,
                "must be true or false" + (" or null (the block order's rule)" if key == "projection_norm" else ""))
    require(input_size is None or (isinstance(input_size, int) and input_size > 0), "input_size", input_size,
            "must be a positive integer")

    def scale(c: int) -> int:
        return max(1, int(c * width + 0.5))  # at least one channel, round half up

    widths, mids = [scale(c) for c in widths], [scale(c) for c in mids]
    # The stem feeds the first unit: as wide as its inner width (64 for ImageNet, 16 for CIFAR).
    stem = _stem(knob, family, input_size, mids[0] if block == BlockType.bottleneck else widths[0], scale)
    if shortcut == Shortcut.A:
        chans = [stem["stem_width"]] + widths
        require(all(b >= a for a, b in zip(chans, chans[1:])), "shortcut", "A",
                f"zero-padding cannot shrink channels {chans}; use B or C")
    return ArchSpec(name=name, family=family, block=block, widths=tuple(widths), blocks=tuple(blocks),
                    bottleneck_widths=tuple(mids), strides=tuple(strides), block_order=order, shortcut=shortcut,
                    drop_path=float(drop_path), init=init, norm_eps=float(eps), norm_momentum=float(momentum),
                    **switches, **stem)


def create_model(name: str, num_classes: int = 1000, in_channels: int = 3, input_size: int | None = None,
                 norm_layer: NormLayer | None = None, act_layer: ActLayer = nn.ReLU, **arch: Any) -> ResNet:
    """Build a named arch with the knobs of `ArchOptions` (`conf/arch/*.yaml`'s keys); `input_size` (px) lets
    `stem="auto"` choose, `norm_layer` replaces the BatchNorm. Bad input raises a one-line ConfigError."""
    require(isinstance(num_classes, int) and num_classes >= 0, "num_classes", num_classes, "must be an integer >= 0")
    require(isinstance(in_channels, int) and in_channels >= 1, "in_channels", in_channels, "must be an integer >= 1")
    spec = resolve(name, input_size=input_size, **arch)
    return ResNet(spec, num_classes=num_classes, in_channels=in_channels, norm_layer=norm_layer, act_layer=act_layer)
