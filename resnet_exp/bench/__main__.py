"""Time forward / training steps of one architecture on synthetic input: `python -m resnet_exp.bench`.

    python -m resnet_exp.bench arch=resnet152 arch.block_order=pre bench.batch_size=32 \
        bench.image_size=224 'bench.mode=[forward,train]'
    python -m resnet_exp.bench -m arch=resnet50v2,resnet101v2,resnet152v2,resnet200v2   # one table

Per mode: `bench.burn_in` untimed batches, then `bench.batches` timed ones. On CUDA each batch is
bracketed by CUDA events read after the last batch (or `bench.timer=sync`: a synchronize before and
after every batch). Writes bench.json and bench.csv into the run folder; a multirun also writes
bench.csv and bench.md with every job's rows into the sweep folder and prints them as one table.
"""

from __future__ import annotations

import logging

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from torch import nn

from resnet_exp import speed
from resnet_exp.app.cli import run_hydra_app
from resnet_exp.app.run_dir import RunFolder
from resnet_exp.bench.table import BENCH_CSV, BENCH_JSON, format_table, write_csv
from resnet_exp.bench.timing import benchmark
from resnet_exp.config import CONF_DIR, register_schemas, validate
from resnet_exp.errors import ConfigError
from resnet_exp.io import write_json_atomic
from resnet_exp.speed import environment, is_out_of_memory

log = logging.getLogger(__name__)

PRECISIONS = {"auto": None, "fp32": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed"}


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("bench.device=cuda: no CUDA device is available here "
                          "(torch.cuda.is_available() is False); use bench.device=cpu or auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def build_model(cfg: DictConfig) -> nn.Module:
    from hydra.utils import instantiate

    b = cfg.bench
    return instantiate(cfg.arch, num_classes=b.num_classes, in_channels=b.in_channels,
                       input_size=b.image_size)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="bench")
def bench(cfg: DictConfig) -> None:
    with RunFolder() as folder:  # nothing is written until the timings exist
        validate(cfg, groups=("arch", "bench", "speed"))
        b = cfg.bench
        device = resolve_device(b.device.value if hasattr(b.device, "value") else str(b.device))
        model = build_model(cfg)
        if b.image_size < model.spec.min_input_size:
            raise ConfigError(f"bench.image_size={b.image_size}: too small for {model.spec.name} "
                              f"({model.spec.describe_stem()}); use bench.image_size >= {model.spec.min_input_size}")
        precision = PRECISIONS[str(getattr(b.precision, "value", b.precision))]
        plan = speed.plan({"accelerator": device.type, "precision": precision,
                           "benchmark": b.cudnn_benchmark}, cfg.speed)
        arch = HydraConfig.get().runtime.choices.get("arch") or cfg.arch.name
        modes = [str(getattr(m, "value", m)) for m in b.mode]
        order = getattr(model.spec.block_order, "value", str(model.spec.block_order))
        log.info("bench %s (%s) on %s: %s, %s", arch, order, device, plan, modes)
        try:
            rows = benchmark(model, arch=str(cfg.arch.name), block_order=order, modes=modes,
                             batch_size=b.batch_size, image_size=b.image_size, in_channels=b.in_channels,
                             num_classes=b.num_classes, device=device, plan=plan, burn_in=b.burn_in,
                             batches=b.batches, timer=str(getattr(b.timer, "value", b.timer)),
                             count=b.count_flops, peak=b.peak_tflops, seed=b.seed)
        except (RuntimeError, MemoryError) as exc:  # CPU allocation failures are plain RuntimeErrors
            if not is_out_of_memory(exc):
                raise
            raise ConfigError(f"bench.batch_size={b.batch_size}: a batch of {b.image_size}x{b.image_size} "
                              f"images does not fit in {device.type} memory; "
                              "lower bench.batch_size or bench.image_size") from None
        folder.set_up()
        payload = {"environment": environment(), "speed": plan.as_dict(),
                   "overrides": list(HydraConfig.get().overrides.task), "rows": rows}
        write_json_atomic(folder.path / BENCH_JSON, payload)
        write_csv(folder.path / BENCH_CSV, rows)
        print(format_table(rows), flush=True)
        log.info("bench results: %s", folder.path / BENCH_JSON)


def main() -> None:
    register_schemas()
    run_hydra_app(bench)


if __name__ == "__main__":
    main()
