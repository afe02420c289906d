"""Eager vs torch.compile (inductor) training throughput on this CPU, in one process:

    python -m benchmarks.compile_cpu [--arch resnet20 --image-size 32 --batch-size 32]

The same net (a fresh copy per variant, same seed), same synthetic batch, SGD training steps timed
by `bench.timing` after a burn-in (the compiling batches); the ratio is what carries over.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch

from resnet_exp.bench.timing import benchmark
from resnet_exp.models import create_model
from resnet_exp.speed import SpeedPlan

VARIANTS = (("eager", False, None), ("compiled", True, "max-autotune-no-cudagraphs"))


def run(arch: str = "resnet20", image: int = 32, batch: int = 32, burn_in: int = 3, batches: int = 10,
        threads: int = 1, variants: Sequence[tuple] = VARIANTS, log: Callable[[str], None] = print
        ) -> dict[str, Any]:
    torch.set_num_threads(threads)
    rows: list[dict[str, Any]] = []
    for label, compile_, mode in variants:
        torch.manual_seed(0)
        model = create_model(arch, num_classes=10, in_channels=3, input_size=image)
        plan = SpeedPlan(cuda=False, precision="32-true", cudnn_benchmark=False, channels_last=False, tf32=False,
                         compile=compile_, compile_mode=mode)
        row = benchmark(model, arch=arch, block_order="post", modes=["train"], batch_size=batch, image_size=image,
                        in_channels=3, num_classes=10, device=torch.device("cpu"), plan=plan, burn_in=burn_in,
                        batches=batches, count=label == "eager")[0]
        row["variant"], row["compile_mode"] = label, mode
        rows.append(row)
        log(f"  {label}: {row['mean_ms']:.1f} ms/batch, {row['images_per_s']:.0f} images/s")
    return {"arch": arch, "image_size": image, "batch_size": batch, "threads": threads, "rows": rows,
            "compiled_vs_eager": rows[1]["images_per_s"] / rows[0]["images_per_s"]}


def table(result: dict[str, Any]) -> str:
    lines = ["| variant | compile mode | ms/batch (mean ± sd) | images/s |", "|---|---|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['variant']} | {r['compile_mode'] or ''} | {r['mean_ms']:.1f} ± {r['std_ms']:.1f} | "
                     f"{r['images_per_s']:.0f} |")
    lines.append(f"\ncompiled / eager images/s: **{result['compiled_vs_eager']:.2f}x**")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compile_cpu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="resnet20")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--burn-in", type=int, default=3)
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    result = run(a.arch, a.image_size, a.batch_size, a.burn_in, a.batches, a.threads,
                 log=lambda m: print(m, file=sys.stderr, flush=True))
    print(table(result))


if __name__ == "__main__":
    main()
