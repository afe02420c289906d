"""CPU suite: the framework's training step against a plain PyTorch loop, and the step timer's cost.

Three configurations on the same model, batches and data (synthetic CIFAR-shaped images through the
datamodule's DataLoader, no workers), interleaved in rounds so that load from other processes hits
all of them alike. Per configuration and round, over the epochs after the first: process CPU time
per batch (the headline on a shared machine: it counts the work done, data loading, the step and
every hook included, and not the time other processes held the cores), and wall time per batch
(mean, and median of batch-to-batch periods). The figure is the median over rounds of each round's
ratio. One intra-op thread by default: it makes CPU time equal wall time on an idle core, and with
two threads on two shared cores OpenMP barriers turn any contention into much slower steps.

- framework: `resnet_exp.run`'s parts (ImageClassifier with metrics and logging, the default
  callbacks including the step timer and the progress bar, CSV logger), checkpoints, validation
  and wandb off.
- framework, step timer off: the same with `callbacks.step_timer=null`.
- plain loop: zero_grad / forward / cross-entropy / backward / SGD step over the same loader.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate

from benchmarks import harness
from resnet_exp.callbacks import StepTimer


def base_overrides(arch: str, width: float, image: int, batch: int, steps: int, epochs: int) -> list[str]:
    return [
        "data=synthetic", f"data.image_size={image}", f"data.train_size={steps * batch}", "data.val_size=0",
        f"data.test_size={batch}", "data.num_workers=0", "data.loader=torch", f"data.batch_size={batch}",
        f"arch={arch}", f"arch.width={width}", "trainer.accelerator=cpu", "trainer.devices=1",
        f"trainer.max_epochs={epochs}", "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0",
        "logger.wandb.mode=disabled", "callbacks.model_summary=null",
        "+callbacks.epoch_clock._target_=benchmarks.harness.EpochClock",
    ]


def without_checkpoints(overrides: list[str], out: Path) -> list[str]:
    """Turn off every ModelCheckpoint entry of the callbacks group (nothing to monitor here)."""
    cfg = harness.compose_run_config(overrides, out)
    names = [k for k, v in cfg.callbacks.items() if v and "ModelCheckpoint" in str(v.get("_target_", ""))]
    return overrides + [f"callbacks.{k}=null" for k in names]


def run(arch: str = "resnet18", width: float = 0.25, image: int = 32, batch: int = 32, steps: int = 16,
        epochs: int = 3, rounds: int = 7, threads: int = 1, log=print) -> dict[str, Any]:
    """Measure; the figures compare medians of per-batch periods (see module docstring)."""
    torch.set_num_threads(threads)
    work = Path(tempfile.mkdtemp(prefix="resnet_exp_bench_"))
    overrides = without_checkpoints(base_overrides(arch, width, image, batch, steps, epochs), work / "probe")
    variants = {"framework": overrides, "framework_no_timer": overrides + ["callbacks.step_timer=null"]}
    names = ["framework", "framework_no_timer", "plain"]
    figures: dict[str, dict[str, list[float]]] = {kind: {k: [] for k in names}
                                                  for kind in ("cpu", "median", "mean")}
    params = None
    hook_timers: list[harness.HookTimer] = []

    def instrument(parts: dict[str, Any]) -> None:
        timer = next(cb for cb in parts.trainer.callbacks if isinstance(cb, StepTimer))
        hook_timers.append(harness.HookTimer(timer))

    for r in range(rounds):
        for name in names[r % 3:] + names[:r % 3]:
            out = work / f"{name}_{r}"
            if name == "plain":
                cfg = harness.compose_run_config(overrides, out)
                datamodule = instantiate(cfg.data)
                datamodule.prepare_data()
                datamodule.setup("fit")
                model = harness.run_model(cfg, datamodule)
                params = sum(p.numel() for p in model.parameters())
                optimizer = harness.make_optimizer(cfg, model)
                stamps = harness.plain_loop(model, optimizer, datamodule.train_dataloader, epochs,
                                            torch.device("cpu"))
            else:
                cfg = harness.compose_run_config(variants[name], out)
                fit = harness.framework_fit(cfg, before_fit=instrument if name == "framework" else None)
                stamps = harness.callback(fit, "EpochClock").epochs
            for kind, value in harness.step_ms(stamps).items():
                if kind in figures:
                    figures[kind][name].append(value)
        log(f"  round {r + 1}/{rounds}: CPU ms/batch " + ", ".join(
            f"{k} {v[-1]:.1f}" for k, v in figures["cpu"].items()))
    shutil.rmtree(work, ignore_errors=True)
    result: dict[str, Any] = {
        "arch": arch, "width": width, "image_size": image, "batch_size": batch,
        "steps_per_epoch": steps, "epochs": epochs, "rounds": rounds, "params": params, "threads": threads,
        "rounds_raw": figures,
        "timer_hooks_us": statistics.median(h.us_per_batch() for h in hook_timers),
        "timer_epoch_ms": statistics.median(h.ms_per_epoch() for h in hook_timers),
    }
    result.update(summarize(figures))
    return result


def summarize(figures: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """Medians over rounds (and of per-round ratios / differences) for each kind of figure."""
    result: dict[str, Any] = {}
    for kind, per_config in figures.items():
        fw, off, plain = per_config["framework"], per_config["framework_no_timer"], per_config["plain"]
        overhead = [f / p for f, p in zip(fw, plain)]
        timer = [on / o for on, o in zip(fw, off)]
        result[kind] = {
            "ms": {k: statistics.median(v) for k, v in per_config.items()},
            "vs_plain": {k: statistics.median(x / p for x, p in zip(v, plain)) for k, v in per_config.items()},
            "framework_vs_plain": statistics.median(overhead),
            "framework_vs_plain_range": [min(overhead), max(overhead)],
            "timer_on_vs_off": statistics.median(timer),
            "timer_on_vs_off_range": [min(timer), max(timer)],
            # Absolute extra time per batch (ms), for the overhead probe on a near-free model.
            "framework_minus_plain_ms": statistics.median(f - p for f, p in zip(fw, plain)),
            "timer_on_minus_off_ms": statistics.median(on - o for on, o in zip(fw, off)),
        }
    return result
