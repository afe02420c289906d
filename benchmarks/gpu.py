"""GPU section (CUDA): training throughput and MFU of the framework, a plain loop and torchvision's model (CIFAR
layout, 32 px, fast path defaults); the step timer's cost, and its CUDA-event mean against a synchronize-per-batch
host clock of the same batches (target: within 3%); the sync guard (no host sync outside logging steps); the speed
switches one at a time and the ResNet-v2 timing table, both as `python -m resnet_exp.bench` runs."""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torchvision
from pytorch_lightning.callbacks import Callback
from torch import nn

from benchmarks import harness
from resnet_exp.models.complexity import count_flops
from resnet_exp.speed import AUTOCAST, peak_tflops, synchronize

SWITCHES = (  # (label, bench overrides) measured one at a time against the defaults
    ("fast path defaults", []),
    ("bf16 off (fp32 + TF32)", ["bench.precision=fp32"]),
    ("bf16 off, TF32 off (plain fp32)", ["bench.precision=fp32", "speed.tf32=false"]),
    ("channels_last off", ["speed.channels_last=false"]),
    ("cudnn.benchmark off", ["bench.cudnn_benchmark=false"]),
    ("torch.compile on", ["speed.compile=true"]),
    ("torch.compile reduce-overhead (CUDA graphs)", ["speed.compile=true", "speed.compile_mode=reduce-overhead"]),
)
V2_TIMING = (("fast path defaults", ["bench.precision=auto"]),
             ("fp32, NCHW", ["bench.precision=fp32", "speed.channels_last=false", "speed.tf32=false"]))


class SyncReference(Callback):
    """The slow, obvious measurement: synchronize before and after every batch, host clock."""

    def __init__(self) -> None:
        self.ms: list[float] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        synchronize(pl_module.device)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        synchronize(pl_module.device)
        self.ms.append((time.perf_counter() - self._start) * 1e3)


def train_arch(arch: str, batch: int, steps: int, epochs: int, work: Path, log: Callable[[str], None] = print,
               accelerator: str = "gpu") -> dict[str, Any]:
    """Every training figure of one arch (`accelerator="cpu"` runs the same code without a GPU)."""
    ov = ["data=synthetic", "data.image_size=32", f"data.train_size={steps * batch}", "data.val_size=0",
          f"data.test_size={batch}", "data.num_workers=0", f"data.batch_size={batch}", f"arch={arch}",
          f"trainer.accelerator={accelerator}", "trainer.devices=1", f"trainer.max_epochs={epochs}",
          "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0", "logger.wandb.mode=disabled",
          "callbacks.model_summary=null", "callbacks.model_checkpoint=null", "callbacks.last_checkpoint=null",
          "+callbacks.epoch_clock._target_=benchmarks.harness.EpochClock"]
    runs = itertools.count()

    def fit(*extra: str) -> harness.Parts:
        return harness.framework_fit(harness.compose_run_config([*ov, *extra], work / f"{arch}_{next(runs)}"))

    def epoch_ms(parts: harness.Parts) -> float:
        return harness.mean_step_ms(harness.callback(parts, "EpochClock").epochs)

    main = fit()
    device, plan = main.module.device, main.speed
    res: dict[str, Any] = {"arch": arch, "batch_size": batch, "steps_per_epoch": steps, "epochs": epochs,
                           "speed": plan.as_dict(), "framework_ms": epoch_ms(main),
                           "step_timer": {k: v for k, v in harness.callback(main, "StepTimer").summary().items()
                                          if k != "per_epoch"},
                           "framework_no_timer_ms": epoch_ms(fit("callbacks.step_timer=null"))}
    ref = fit("+callbacks.sync_reference._target_=benchmarks.gpu.SyncReference")
    timer, sync = harness.callback(ref, "StepTimer"), harness.callback(ref, "SyncReference")
    pairs = [(row.device_ms, ms) for row, ms in zip(timer.rows, sync.ms) if not row.warmup]
    res["events_vs_sync"] = statistics.mean(p[0] for p in pairs) / statistics.mean(p[1] for p in pairs)
    try:  # on CUDA the guard runs the steps (logging steps excepted) under set_sync_debug_mode("error")
        fit("trainer.max_epochs=1", "+callbacks.sync_guard._target_=resnet_exp.callbacks.sync_guard.SyncGuard")
        res["sync_guard"] = "passed"
    except RuntimeError as err:  # HostSyncError is one
        res["sync_guard"] = f"failed: {str(err).splitlines()[0][:200]}"
    loader = main.datamodule.train_dataloader  # still attached to its trainer: the GPU loader on this device

    def plain_ms(model: nn.Module, optimizer: Callable[[nn.Module], torch.optim.Optimizer]) -> float:
        model = plan.prepare_model(model.to(device))
        return harness.mean_step_ms(harness.plain_loop(model, optimizer(model), loader, epochs, device,
                                                       AUTOCAST.get(plan.precision), plan.channels_last))

    cfg = harness.compose_run_config(ov, work / f"{arch}_plain")
    res["plain_ms"] = plain_ms(harness.run_model(cfg, main.datamodule), lambda m: harness.make_optimizer(cfg, m))
    tv = getattr(torchvision.models, arch)(num_classes=main.datamodule.num_classes)
    tv.conv1, tv.maxpool = nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.Identity()  # the CIFAR layout
    tv_flops = count_flops(tv, (1, 3, 32, 32), "train")
    res["torchvision_ms"] = plain_ms(tv, lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9,
                                                                   weight_decay=5e-4))
    flops = main.train_flops
    res["peak_tflops"] = peak = peak_tflops(device, plan.precision, plan.tf32)
    for key, per_image in (("framework", flops), ("framework_no_timer", flops), ("plain", flops),
                           ("torchvision", tv_flops)):
        res[f"{key}_images_per_s"] = rate = batch / (res[f"{key}_ms"] / 1e3)
        res[f"{key}_mfu"] = rate * per_image / (peak * 1e12) if per_image and peak else None
    res["train_gflop_per_image"] = flops / 1e9 if flops else None
    log(f"  {arch}: framework {res['framework_ms']:.2f}, plain {res['plain_ms']:.2f}, torchvision "
        f"{res['torchvision_ms']:.2f} ms/batch; events/sync {res['events_vs_sync']:.4f}, "
        f"sync guard {res['sync_guard']}")
    return res


def bench_tables(part: str, archs: Sequence[str], batch_size: int) -> dict[str, list[tuple[str, list[str]]]]:
    """{table title: [(run label, `resnet_exp.bench` arguments)]} of the switches or the v2 timing part."""
    if part == "v2_timing":
        recipe = ["-m", "bench_recipe=resnet_v2_timing", "bench.mode=[forward,train]"]
        return {"ResNet-v2 timing table": [(label, [*recipe, *extra]) for label, extra in V2_TIMING]}
    return {f"Speed switches one at a time, {arch}, CIFAR layout, batch {batch_size}, train step": [
        (label, [f"arch={arch}", "bench.image_size=32", "bench.num_classes=10", f"bench.batch_size={batch_size}",
                 "bench.mode=[train]", "bench.burn_in=20", "bench.batches=100", *extra]) for label, extra in SWITCHES]
        for arch in archs}


def measure(archs: Sequence[str], parts: Sequence[str], batch_size: int, steps: int, epochs: int,
            log: Callable[[str], None], previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Measure `parts` on CUDA device 0; the other parts are kept from `previous` of the same device."""
    device = torch.cuda.get_device_name(0)
    out = dict(previous) if previous and previous.get("device") == device else {}
    out.update(device=device, measured={**out.get("measured", {}),
                                        **dict.fromkeys(parts, time.strftime("%Y-%m-%d %H:%M %Z"))})
    if "training" in parts:
        with tempfile.TemporaryDirectory(prefix="resnet_exp_gpu_bench_") as work:
            out["training"] = [train_arch(arch, batch_size, steps, epochs, Path(work), log) for arch in archs]
    for part in set(parts) - {"training"}:
        tables = bench_tables(part, archs, batch_size)
        out[part] = {title: harness.bench_runs(runs, log=log) for title, runs in tables.items()}
    return out
