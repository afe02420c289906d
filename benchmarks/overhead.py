"""Framework overhead per training step: sections `overhead` (whole processes with N1 and N2 training batches,
resnet20) and `attribution` (in one process, on a near-free model); benchmarks/render.py says how each figure is
taken. Programs: `plain` (the textbook loop), `lightning` (a forward + loss LightningModule in a Trainer with its
extras off), `framework` (all that `resnet_exp.run` builds); plain and lightning take the data, model and
optimizer of the config the overrides make. A variant is one line of VARIANTS (name, program, overrides); ad hoc,
a comma-separated override list given as a variant is a framework variant of that name."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from torch import nn

from benchmarks import harness


@dataclass(frozen=True)
class Variant:
    """One program to time; its overrides go to the config of `python -m resnet_exp.run`."""

    name: str
    program: str  # plain, lightning or framework
    overrides: tuple[str, ...] = ()


VARIANTS = (
    Variant("plain", "plain"),
    Variant("lightning", "lightning"),
    Variant("framework", "framework"),
    Variant("framework-no-step-timer", "framework", ("callbacks.step_timer=null",)),
    Variant("framework-no-wandb", "framework", ("logger.wandb.mode=disabled",)),
    Variant("framework-no-lr-monitor", "framework", ("callbacks.lr_monitor=null",)),
    Variant("framework-no-model-summary", "framework", ("callbacks.model_summary=null",)),
    Variant("framework-no-checkpoints", "framework",
            ("callbacks.model_checkpoint=null", "callbacks.last_checkpoint=null")),
    Variant("framework-lightning-checkpoints", "framework",
            ("callbacks.model_checkpoint._target_=pytorch_lightning.callbacks.ModelCheckpoint",
             "callbacks.last_checkpoint._target_=pytorch_lightning.callbacks.ModelCheckpoint")),
    Variant("framework-lightning-profiler", "framework",
            ("+trainer.profiler._target_=pytorch_lightning.profilers.PassThroughProfiler",)),
)
OVERHEAD_VARIANTS = ("plain", "lightning", "framework")
BASELINES = ("plain", "framework")  # excesses over the plain loop, and against the framework as shipped
LOOP_FILE = "loop.json"  # {"loop_s": seconds of the training epoch}, written by every process
CLOCK = "+callbacks.epoch_clock._target_=benchmarks.harness.EpochClock"


def variant(text: str) -> Variant:
    """A variant of VARIANTS by name, or a framework variant from comma-separated overrides."""
    known = {v.name: v for v in VARIANTS}
    if text in known or "=" in text:
        return known.get(text) or Variant(text, "framework", tuple(text.split(",")))
    raise argparse.ArgumentTypeError(f"unknown variant {text!r}: one of {', '.join(known)}, or "
                                     "comma-separated framework overrides such as callbacks.step_timer=null")


def base_overrides(batches: int, arch: str = "resnet20", width: float = 0.25, batch_size: int = 4,
                   image_size: int = 8) -> list[str]:
    """Data and model of every program: `batches` training batches (and one held out for validation)."""
    return ["data=synthetic", f"data.batch_size={batch_size}", f"data.image_size={image_size}",
            f"data.train_size={(batches + 1) * batch_size}", f"data.val_size={batch_size}",
            f"data.test_size={batch_size}", "data.num_workers=0", f"arch={arch}", f"arch.width={width}",
            "trainer.max_epochs=1", "trainer.accelerator=cpu", "trainer.devices=1", "logger.wandb.mode=offline"]


def near_free_model(datamodule: Any) -> nn.Module:
    size = datamodule.image_size
    return nn.Sequential(nn.Flatten(), nn.Linear(datamodule.in_channels * size * size, datamodule.num_classes))


def train(program: str, overrides: Sequence[str], out: Path, near_free: bool = False) -> harness.Stamps:
    """One epoch of `program` in this process; its clock stamps."""
    if program == "framework":
        import wandb

        def swap_model(parts: harness.Parts) -> None:
            parts.module.model = near_free_model(parts.datamodule)
        try:
            parts = harness.framework_fit(harness.compose_run_config([*overrides, CLOCK], out),
                                          swap_model if near_free else None)
        finally:
            if wandb.run is not None:  # the next fit would otherwise log into this run
                wandb.finish()
        return harness.callback(parts, "EpochClock").epochs
    cfg = harness.compose_run_config(overrides, out)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    model = near_free_model(datamodule) if near_free else harness.run_model(cfg, datamodule)
    if program == "lightning":
        return harness.bare_fit(model, cfg, datamodule, out)
    datamodule.setup("fit")
    return harness.plain_loop(model, harness.make_optimizer(cfg, model), datamodule.train_dataloader, 1,
                              torch.device("cpu"))


def process_command(v: Variant, overrides: Sequence[str], out: Path) -> list[str]:
    """The framework as `python -m resnet_exp.run`; the other programs through this module's main."""
    if v.program == "framework":
        return [sys.executable, "-m", "resnet_exp.run", *overrides, CLOCK,
                f"+callbacks.epoch_clock.output_file={out / LOOP_FILE}", f"hydra.run.dir={out}"]
    return [sys.executable, "-m", "benchmarks.overhead", v.program, str(out), "--", *overrides]


def measure_overhead(variants: Sequence[Variant], steps: Sequence[int], rounds: int, arch: str, width: float,
                     batch_size: int, image_size: int, threads: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Per variant and round, ms per training batch: training loop and whole process."""
    n1, n2 = steps
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), WANDB_SILENT="true")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(harness.REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    per_round: dict[str, dict[str, list[float]]] = {v.name: {"loop": [], "wall": []} for v in variants}
    with tempfile.TemporaryDirectory(prefix="resnet_exp_overhead_", ignore_cleanup_errors=True) as work:
        for r in range(rounds):
            for i, v in enumerate(harness.rotated(variants, r)):
                times = {}
                for n in (n1, n2):  # wall seconds of the process, and of its training loop as it wrote them
                    out = Path(work) / f"{r}_{i}_{n}"
                    out.mkdir()
                    ov = [*base_overrides(n, arch, width, batch_size, image_size), *v.overrides]
                    cmd = process_command(v, ov, out)
                    start = time.perf_counter()
                    harness.run_checked(cmd, env)
                    wall = time.perf_counter() - start
                    times[n] = {"loop": json.loads((out / LOOP_FILE).read_text())["loop_s"], "wall": wall}
                for key, values in per_round[v.name].items():
                    values.append((times[n2][key] - times[n1][key]) / (n2 - n1) * 1e3)
            log(f"  round {r + 1}/{rounds}: training loop ms/step " + ", ".join(
                f"{name} {v['loop'][-1]:.2f}" for name, v in per_round.items()))
    return {"unit": "ms", "per_round": per_round, "summary": harness.summarize(per_round, BASELINES)}


def measure_attribution(variants: Sequence[Variant], steps: int, rounds: int, threads: int,
                        log: Callable[[str], None]) -> dict[str, Any]:
    """Per variant and round, mean us per training batch on the near-free model."""
    torch.set_num_threads(threads)
    per_round: dict[str, dict[str, list[float]]] = {v.name: {"wall": []} for v in variants}
    with tempfile.TemporaryDirectory(prefix="resnet_exp_attribution_", ignore_cleanup_errors=True) as work:
        for r in range(rounds):
            for i, v in enumerate(harness.rotated(variants, r)):
                out = Path(work) / f"{r}_{i}"
                epochs = train(v.program, [*base_overrides(steps), *v.overrides], out, near_free=True)
                per_round[v.name]["wall"].append(harness.mean_step_ms(epochs, skip=0) * 1e3)
            log(f"  round {r + 1}/{rounds}: us/step " + ", ".join(
                f"{name} {v['wall'][-1]:.0f}" for name, v in per_round.items()))
    return {"unit": "us", "per_round": per_round, "summary": harness.summarize(per_round, BASELINES)}


def main() -> None:
    """A process of the overhead measurement, started by `process_command` (`PROGRAM OUT -- OVERRIDES`): one
    epoch of the plain or the bare Lightning program; the training loop's seconds go to OUT/loop.json."""
    program, out, _, *overrides = sys.argv[1:]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    harness.write_loop_seconds(Path(out) / LOOP_FILE, train(program, overrides, Path(out)))


if __name__ == "__main__":
    main()
