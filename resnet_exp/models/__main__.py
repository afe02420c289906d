"""`python -m resnet_exp.models [PATTERN]`: a table of every arch, to pick one without reading code
(torchvision's "GFLOPS" column counts multiply-adds, i.e. half of these FLOPs)."""

from __future__ import annotations

import sys

from resnet_exp.errors import OneLineArgumentParser
from resnet_exp.io import md_table
from resnet_exp.models.complexity import complexity
from resnet_exp.models.families import list_models, resolve

HEADER = ["name", "family", "depth", "block", "order", "params@32px/10cls", "params@224px/1000cls",
          "GFLOPs@32px", "GFLOPs@224px"]


def rows(pattern: str | None = None) -> list[list[str]]:
    """One row per arch, built for 32 and 224 px inputs with stem="auto" (custom nets have no default
    layout and are listed without numbers)."""
    out = []
    for name in list_models(pattern):
        if name == "custom":
            out.append([name, "custom", "-", "any", "-", "-", "-", "-", "-"])
            continue
        spec = resolve(name, input_size=32)
        p32, f32 = complexity(spec, num_classes=10, size=32)
        p224, f224 = complexity(resolve(name, input_size=224), num_classes=1000, size=224)
        out.append([name, spec.family, str(spec.depth), spec.block.value, spec.block_order.value,
                    f"{p32 / 1e6:.2f}M", f"{p224 / 1e6:.2f}M", f"{f32 / 1e9:.3f}", f"{f224 / 1e9:.2f}"])
    return out


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
        print(md_table(HEADER, "l" * len(HEADER), table[1:]), end="")
        return
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
    for r in table:
        print("  ".join(c.ljust(w) if i < 5 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    print("stem=auto: CIFAR stem (3x3/1, no pool) at 32 px, ImageNet stem (7x7/2 + max-pool) at 224 px;"
          " 1 multiply-add = 2 FLOPs.")


if __name__ == "__main__":
    main()
