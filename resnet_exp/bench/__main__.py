"""Time forward / training steps of one architecture on synthetic input: `python -m resnet_exp.bench` writes
bench.json and bench.csv into the run folder (`-m`: also every job's rows in one table, in the sweep folder).

    python -m resnet_exp.bench -m arch=resnet50v2,resnet101v2 bench.batch_size=32 'bench.mode=[forward,train]'
"""

from __future__ import annotations

import logging

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from resnet_exp import speed
from resnet_exp.app.cli import run_hydra_app
from resnet_exp.app.run_dir import RunFolder
from resnet_exp.bench.table import BENCH_CSV, BENCH_JSON, format_table, write_csv
from resnet_exp.bench.timing import benchmark
from resnet_exp.config import CONF_DIR, register_schemas, validate
from resnet_exp.errors import ConfigError
from resnet_exp.io import write_json_atomic

log = logging.getLogger(__name__)

# bench.precision -> Lightning's precision (None: `speed.plan` chooses).
PRECISIONS = {"auto": None, "fp32": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed"}


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="bench")
def bench(cfg: DictConfig) -> None:
    with RunFolder() as folder:  # nothing is written until the timings exist
        validate(cfg, groups=("arch", "bench", "speed"))
        b = OmegaConf.to_container(cfg.bench, resolve=True, enum_to_str=True)  # the enums' names are their values
        if b["device"] == "auto":
            b["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        elif b["device"] == "cuda" and not torch.cuda.is_available():
            raise ConfigError("bench.device=cuda: no CUDA device is available here "
                              "(torch.cuda.is_available() is False); use bench.device=cpu or auto")
        device = torch.device(b.pop("device"))
        model = instantiate(cfg.arch, num_classes=b["num_classes"], in_channels=b["in_channels"],
                            input_size=b["image_size"])
        spec = model.spec
        if b["image_size"] < spec.min_input_size:
            raise ConfigError(f"bench.image_size={b['image_size']}: too small for {spec.name} "
                              f"({spec.describe_stem()}); use bench.image_size >= {spec.min_input_size}")
        plan = speed.plan({"accelerator": device.type, "precision": PRECISIONS[b.pop("precision")],
                           "benchmark": b.pop("cudnn_benchmark")}, cfg.speed)
        arch = HydraConfig.get().runtime.choices.get("arch") or cfg.arch.name
        order = getattr(spec.block_order, "value", str(spec.block_order))
        log.info("bench %s (%s) on %s: %s, %s", arch, order, device, plan, b["mode"])
        try:
            rows = benchmark(model, arch=str(cfg.arch.name), block_order=order, device=device, plan=plan, **b)
        except (RuntimeError, MemoryError) as exc:  # CPU allocation failures are plain RuntimeErrors
            if not speed.is_out_of_memory(exc):
                raise
            raise ConfigError(f"bench.batch_size={b['batch_size']}: a batch of {b['image_size']}x{b['image_size']} "
                              f"images does not fit in {device.type} memory; "
                              "lower bench.batch_size or bench.image_size") from None
        folder.set_up()
        payload = {"environment": speed.environment(), "speed": plan.as_dict(),
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
