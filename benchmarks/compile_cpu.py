"""Eager vs torch.compile (inductor) training throughput on this CPU, in one process.

The same net (a fresh copy per variant, same seed) and synthetic batch, SGD training steps timed by
`resnet_exp.bench.timing` after burn-in batches (which hold the compilation); the ratio is what
carries over to another machine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from resnet_exp.bench.timing import benchmark
from resnet_exp.models import create_model
from resnet_exp.speed import SpeedPlan

VARIANTS = (("eager", False, None), ("compiled", True, "max-autotune-no-cudagraphs"))  # label, compile, mode


def measure(arch: str = "resnet20", image_size: int = 32, batch_size: int = 32, burn_in: int = 3, batches: int = 10,
            threads: int = 1, log: Callable[[str], None] = print) -> dict[str, Any]:
    """One row per variant (`bench.timing` row: mean_ms, std_ms, images_per_s, ...) and the ratio."""
    torch.set_num_threads(threads)
    rows: list[dict[str, Any]] = []
    for label, compile_, mode in VARIANTS:
        torch.manual_seed(0)
        model = create_model(arch, num_classes=10, in_channels=3, input_size=image_size)
        plan = SpeedPlan(cuda=False, precision="32-true", cudnn_benchmark=False, channels_last=False, tf32=False,
                         compile=compile_, compile_mode=mode)
        row = benchmark(model, arch=arch, block_order="post", modes=["train"], batch_size=batch_size,
                        image_size=image_size, in_channels=3, num_classes=10, device=torch.device("cpu"), plan=plan,
                        burn_in=burn_in, batches=batches, count=label == "eager")[0]
        row["variant"], row["compile_mode"] = label, mode
        rows.append(row)
        log(f"  {label}: {row['mean_ms']:.1f} ms/batch, {row['images_per_s']:.0f} images/s")
    return {"rows": rows, "compiled_vs_eager": rows[1]["images_per_s"] / rows[0]["images_per_s"]}
