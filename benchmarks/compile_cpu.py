"""Eager vs torch.compile (inductor) training throughput on this CPU: the same `python -m
resnet_exp.bench` run (SGD steps on one synthetic batch, timed after burn-in batches, which hold the
compilation) without and with `speed.compile=true`, each in a fresh process. The ratio carries over."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks import harness

MODE = "max-autotune-no-cudagraphs"


def measure(arch: str = "resnet20", image_size: int = 32, batch_size: int = 32, burn_in: int = 3, batches: int = 10,
            threads: int = 1, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The two runs (label, command, `bench` rows) and compiled / eager images/s."""
    base = [f"arch={arch}", "bench.device=cpu", f"bench.image_size={image_size}", f"bench.batch_size={batch_size}",
            "bench.num_classes=10", "bench.mode=[train]", f"bench.burn_in={burn_in}", f"bench.batches={batches}"]
    runs = harness.bench_runs([("eager", base), (f"compiled ({MODE})", [*base, "speed.compile=true",
                                                                         f"speed.compile_mode={MODE}"])], threads, log)
    eager, compiled = (run["rows"][0]["images_per_s"] for run in runs)
    return {"runs": runs, "compiled_vs_eager": compiled / eager}
