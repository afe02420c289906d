"""`python -m resnet_exp.models [PATTERN]`: a table of every arch, to pick one without reading code.

Models are built on the meta device, so nothing is allocated or computed and even resnet1202 lists
instantly. FLOPs come from torch.utils.flop_counter (1 multiply-add = 2 FLOPs; torchvision's
"GFLOPS" column counts multiply-adds, i.e. half of these).
"""

from __future__ import annotations

import sys

from resnet_exp.errors import OneLineArgumentParser
from resnet_exp.models.complexity import complexity
from resnet_exp.models.factory import list_models, resolve


def _count(name: str, num_classes: int, size: int) -> tuple[int, int]:
    """(parameters, FLOPs) of `name` as built for `size` px inputs with `stem="auto"`."""
    return complexity(resolve(name, input_size=size), num_classes=num_classes, size=size)


def rows(pattern: str | None = None) -> list[list[str]]:
    """One row per arch (custom nets have no default layout and are listed without numbers)."""
    out = []
    for name in list_models(pattern):
        if name == "custom":
            out.append([name, "custom", "-", "any", "-", "-", "-", "-", "-"])
            continue
        spec = resolve(name)
        p32, f32 = _count(name, 10, 32)
        p224, f224 = _count(name, 1000, 224)
        out.append([
            name, spec.family, str(spec.depth), spec.block.value, spec.block_order.value,
            f"{p32 / 1e6:.2f}M", f"{p224 / 1e6:.2f}M", f"{f32 / 1e9:.3f}", f"{f224 / 1e9:.2f}",
        ])
    return out


HEADER = ["name", "family", "depth", "block", "order", "params@32px/10cls", "params@224px/1000cls",
          "GFLOPs@32px", "GFLOPs@224px"]


def main(argv: list[str] | None = None) -> None:
    parser = OneLineArgumentParser(prog="python -m resnet_exp.models", description=__doc__.splitlines()[0])
    parser.add_argument("pattern", nargs="?", help="shell-style filter, e.g. 'resnet*v2'")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    if args.pattern and not list_models(args.pattern):
        print(f"error: {args.pattern}: matches no arch; known: {', '.join(list_models())} "
              "(shell-style patterns like 'resnet*v2')", file=sys.stderr)
        sys.exit(2)
    table = [HEADER] + rows(args.pattern)
    if args.markdown:
        for i, r in enumerate(table):
            print("| " + " | ".join(r) + " |")
            if i == 0:
                print("|" + "|".join("---" for _ in r) + "|")
        return
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
    for r in table:
        print("  ".join(c.ljust(w) if i < 5 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    print("stem=auto: CIFAR stem (3x3/1, no pool) at 32 px, ImageNet stem (7x7/2 + max-pool) at 224 px;"
          " 1 multiply-add = 2 FLOPs.")


if __name__ == "__main__":
    main()
