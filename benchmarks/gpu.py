"""GPU suite (CUDA only): training throughput, MFU, the step timer's trustworthiness and cost, the
speed switches one at a time, and seed 001's forward/backward table.

Training figures (per arch, CIFAR layout, 32 px synthetic data, batch 512, fast path defaults:
bf16 autocast, channels_last, cudnn.benchmark, TF32, GPU-resident loader):
- framework: `resnet_exp.run`'s parts, validation/checkpoints/wandb off; images/s from whole
  epochs (synchronized at the epoch end), after a warm-up epoch.
- framework, step timer off: the timer's cost.
- framework + a synchronize-per-batch reference callback: the step timer's CUDA-event mean against
  host-clock-with-sync of the very same batches (target: within 3%).
- plain loop, same model, same GPU loader, same switches: the framework's overhead on a GPU.
- torchvision's resnet in the CIFAR layout, same plain loop: the reference.
MFU = images/s x training FLOPs per image (torch.utils.flop_counter, forward + backward) / the
device's dense bf16 peak.

Bench CLI figures run `python -m resnet_exp.bench` in subprocesses (each switch in a fresh process).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks import harness
from resnet_exp import speed
from resnet_exp.models.complexity import count_flops
from resnet_exp.speed import peak_tflops

SEED_ARCHS = ("resnet50v2", "resnet101v2", "resnet152v2", "resnet200v2")
SWITCHES = (  # (label, bench overrides) measured one at a time against the defaults
    ("fast path defaults", []),
    ("bf16 off (fp32 + TF32)", ["bench.precision=fp32"]),
    ("bf16 off, TF32 off (plain fp32)", ["bench.precision=fp32", "speed.tf32=false"]),
    ("channels_last off", ["speed.channels_last=false"]),
    ("cudnn.benchmark off", ["bench.cudnn_benchmark=false"]),
    ("torch.compile on", ["speed.compile=true"]),
    ("torch.compile reduce-overhead (CUDA graphs)", ["speed.compile=true", "speed.compile_mode=reduce-overhead"]),
)


def overrides(arch: str, batch: int, steps: int, epochs: int, accelerator: str = "gpu") -> list[str]:
    return [
        "data=synthetic", "data.image_size=32", f"data.train_size={steps * batch}", "data.val_size=0",
        f"data.test_size={batch}", "data.num_workers=0", f"data.batch_size={batch}", f"arch={arch}",
        f"trainer.accelerator={accelerator}", "trainer.devices=1", f"trainer.max_epochs={epochs}",
        "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0", "logger.wandb.mode=disabled",
        "callbacks.model_summary=null", "+callbacks.epoch_clock._target_=benchmarks.harness.EpochClock",
    ]


def _fit(ov: Sequence[str], out: Path) -> dict[str, Any]:
    return harness.framework_fit(harness.compose_run_config(ov, out))


def train_arch(arch: str, batch: int, steps: int, epochs: int, work: Path, log=print,
               accelerator: str = "gpu") -> dict[str, Any]:
    """All training figures of one arch (`accelerator=cpu`: a dry run of this code, for tests)."""
    from benchmarks.cpu import without_checkpoints

    ov = without_checkpoints(overrides(arch, batch, steps, epochs, accelerator), work / "probe")
    res: dict[str, Any] = {"arch": arch, "batch_size": batch, "steps_per_epoch": steps, "epochs": epochs}

    fit = _fit(ov, work / f"{arch}_fw")
    device = fit.module.device
    plan: speed.SpeedPlan = fit.speed
    res["speed"] = plan.as_dict()
    res["framework_ms"] = harness.step_ms(harness.callback(fit, "EpochClock").epochs)["mean"]
    res["step_timer"] = harness.callback(fit, "StepTimer").summary()
    res["step_timer"].pop("per_epoch", None)
    log(f"  {arch}: framework {res['framework_ms']:.2f} ms/batch")

    off = _fit(ov + ["callbacks.step_timer=null"], work / f"{arch}_off")
    res["framework_no_timer_ms"] = harness.step_ms(harness.callback(off, "EpochClock").epochs)["mean"]

    ref = _fit(ov + ["+callbacks.sync_reference._target_=benchmarks.harness.SyncReference"],
               work / f"{arch}_sync")
    timer, sync = harness.callback(ref, "StepTimer"), harness.callback(ref, "SyncReference")
    pairs = [(row.device_ms, ms) for row, ms in zip(timer.rows, sync.ms) if not row.warmup]
    res["events_mean_ms"] = statistics.mean(p[0] for p in pairs)
    res["sync_mean_ms"] = statistics.mean(p[1] for p in pairs)
    res["events_vs_sync"] = res["events_mean_ms"] / res["sync_mean_ms"]

    cuda = device.type == "cuda"
    with warnings.catch_warnings(record=True) as caught:  # host syncs during training steps
        warnings.simplefilter("always")
        if cuda:
            torch.cuda.set_sync_debug_mode("warn")
        try:
            probe = _fit(ov + ["trainer.max_epochs=1"], work / f"{arch}_syncs")
        finally:
            if cuda:
                torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    res["host_syncs_per_step"] = len(syncs) / max(probe.trainer.global_step, 1)
    res["sync_guard"] = sync_guard_check(ov, work / f"{arch}_guard")
    log(f"  {arch}: sync guard (set_sync_debug_mode('error') outside logging steps): {res['sync_guard']}")

    datamodule = fit.datamodule  # still attached to its trainer: GPU loader on this device
    autocast = torch.bfloat16 if plan.precision == "bf16-mixed" else None
    cfg = harness.compose_run_config(ov, work / f"{arch}_plain")
    model = plan.prepare_model(harness.run_model(cfg, datamodule).to(device))
    optimizer = harness.make_optimizer(cfg, model)
    stamps = harness.plain_loop(model, optimizer, datamodule.train_dataloader, epochs, device, autocast,
                                plan.channels_last)
    res["plain_ms"] = harness.step_ms(stamps)["mean"]

    tv = harness.torchvision_cifar(arch, datamodule.num_classes)
    tv_flops = count_flops(tv, (1, 3, 32, 32), "train")
    tv = plan.prepare_model(tv.to(device))
    tv_opt = torch.optim.SGD(tv.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    stamps = harness.plain_loop(tv, tv_opt, datamodule.train_dataloader, epochs, device, autocast,
                                plan.channels_last)
    res["torchvision_ms"] = harness.step_ms(stamps)["mean"]

    flops = count_flops(fit.model, (1, 3, 32, 32), "train")
    peak = peak_tflops(device, plan.precision, plan.tf32)
    res["device"] = torch.cuda.get_device_name(device) if cuda else str(device)
    res["peak_tflops"] = peak
    for key, per_image in (("framework", flops), ("framework_no_timer", flops), ("plain", flops),
                           ("torchvision", tv_flops)):
        images_per_s = batch / (res[f"{key}_ms"] / 1e3)
        res[f"{key}_images_per_s"] = images_per_s
        res[f"{key}_mfu"] = images_per_s * per_image / (peak * 1e12) if per_image and peak else None
    res["train_gflop_per_image"] = flops / 1e9 if flops else None
    res["torchvision_train_gflop_per_image"] = tv_flops / 1e9 if tv_flops else None
    log(f"  {arch}: plain {res['plain_ms']:.2f}, torchvision {res['torchvision_ms']:.2f} ms/batch, "
        f"events/sync {res['events_vs_sync']:.4f}, syncs/step {res['host_syncs_per_step']:.2f}")
    return res


def sync_guard_check(ov: Sequence[str], out: Path) -> str:
    """One epoch with the SyncGuard callback: on CUDA it runs the training steps (logging steps
    excepted) under torch.cuda.set_sync_debug_mode("error"). "passed" or the first error line."""
    from resnet_exp.callbacks.sync_guard import HostSyncError

    try:
        _fit(list(ov) + ["trainer.max_epochs=1",
                         "+callbacks.sync_guard._target_=resnet_exp.callbacks.sync_guard.SyncGuard"], out)
    except (HostSyncError, RuntimeError) as err:
        return f"failed: {str(err).splitlines()[0][:200]}"
    return "passed"


def bench_cli(args: Sequence[str], sweep_dir: Path, multirun: bool = False, timeout: int = 900) -> list[dict[str, Any]]:
    """Run `python -m resnet_exp.bench` and return its rows."""
    where = f"hydra.sweep.dir={sweep_dir}" if multirun else f"hydra.run.dir={sweep_dir}"
    cmd = [sys.executable, "-m", "resnet_exp.bench", *(["-m"] if multirun else []), *args, where]
    proc = subprocess.run(cmd, cwd=harness.REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    if multirun:
        import csv

        with (sweep_dir / "bench.csv").open() as handle:
            return list(csv.DictReader(handle))
    return json.loads((sweep_dir / "bench.json").read_text())["rows"]


def switches(arch: str, batch: int, work: Path, log=print) -> list[dict[str, Any]]:
    base = [f"arch={arch}", "bench.image_size=32", "bench.num_classes=10", f"bench.batch_size={batch}",
            "bench.mode=[train]", "bench.burn_in=20", "bench.batches=100"]
    rows = []
    for i, (label, extra) in enumerate(SWITCHES):
        row = bench_cli(base + extra, work / f"switch_{arch}_{i}")[0]
        row["switch"], row["command"] = label, "python -m resnet_exp.bench " + " ".join(base + extra)
        rows.append(row)
        log(f"  {arch} {label}: {row['mean_ms']} ms, {row['images_per_s']} images/s")
    return rows


def seed_table(work: Path, precision: str, log=print) -> dict[str, Any]:
    args = ["arch=" + ",".join(SEED_ARCHS), "bench.batch_size=32", "bench.image_size=224",
            "bench.mode=[forward,train]"]
    if precision == "fp32":
        args += ["bench.precision=fp32", "speed.channels_last=false", "speed.tf32=false"]
    rows = bench_cli(args, work / f"seed_{precision}", multirun=True)
    log(f"  seed 001 table ({precision}): {len(rows)} rows")
    quoted = [a if "[" not in a else f"'{a}'" for a in args]
    return {"command": "python -m resnet_exp.bench -m " + " ".join(quoted), "rows": rows}


PARTS = ("training", "switches", "seed")


def run(batch: int = 512, steps: int = 30, epochs: int = 3, archs: Sequence[str] = ("resnet18", "resnet50"),
        parts: Sequence[str] = PARTS, previous: dict[str, Any] | None = None, log=print
        ) -> dict[str, Any] | None:
    """Measure `parts`; results of other parts are taken from `previous` (same device only)."""
    if not torch.cuda.is_available():
        return None
    work = Path(tempfile.mkdtemp(prefix="resnet_exp_gpu_bench_"))
    device = torch.cuda.get_device_name(0)
    out: dict[str, Any] = dict(previous or {}) if (previous or {}).get("device") == device else {}
    out["device"] = device
    if "training" in parts:
        out["training"] = [train_arch(arch, batch, steps, epochs, work, log) for arch in archs]
    if "switches" in parts:
        out["switches"] = {arch: switches(arch, batch, work, log) for arch in archs}
    if "seed" in parts:
        out["seed_001"] = {p: seed_table(work, p, log) for p in ("auto", "fp32")}
    return out
