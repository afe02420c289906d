"""Framework overhead per training step, against a plain PyTorch loop and bare Lightning.

A variant is data: a name, a program and Hydra overrides of `python -m resnet_exp.run`. Programs:

- plain: the textbook loop (zero_grad, forward, cross-entropy, backward, step);
- lightning: a forward + loss LightningModule in a Trainer with logger, checkpoints, progress bar,
  model summary and validation off;
- framework: everything `python -m resnet_exp.run` builds (default callbacks and loggers, wandb
  offline).

All train the same batches (synthetic datamodule, batch 4 x 8 px, no workers, one epoch) with the
run's optimizer; a variant's overrides go to the run's config, of which plain and lightning use the
data, model and optimizer. Two measurements, one intra-op thread:

- `overhead` (the headline): each variant runs as whole processes with N1 and N2 training batches
  on resnet20 width 0.25. Training loop: (loop(N2) - loop(N1)) / (N2 - N1), where loop is the wall
  time of the training epoch that the process clocks itself (`harness.EpochClock`): a batch's whole
  cost and none of start-up, validation, test and teardown, which vary by seconds (Hydra, wandb's
  service). Whole process: the same difference of the processes' wall times.
- `attribution`: every variant in this process on a near-free model (Flatten + Linear), so that a
  part worth 10 us per step stands out; mean us per training batch. Then one more fit of the
  framework reports the CPU time spent inside each callback's hooks.

Rounds interleave the variants, each first in turn; a figure is the median over rounds, an excess
("over plain", "vs framework") the median over rounds of the difference within the same round,
with its range. Medians, not best-of, which would pick the lucky processes of the noisiest program.

Adding a variant is one line in VARIANTS, e.g. the framework with Lightning's own checkpoint class:

    Variant("framework-lightning-last-checkpoint", "framework",
            ("callbacks.last_checkpoint._target_=pytorch_lightning.callbacks.ModelCheckpoint",)),

then `--attribution-variants <name> ...`. Ad hoc, without editing: a comma-separated override list
given as a variant (`callbacks.lr_monitor=null,callbacks.step_timer=null`) is a framework variant.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks import harness
from resnet_exp.errors import OneLineArgumentParser

PROGRAMS = ("plain", "lightning", "framework")


@dataclass(frozen=True)
class Variant:
    name: str
    program: str  # one of PROGRAMS
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
BASELINES = ("plain", "framework")  # excess columns: over the plain loop, against the full framework
LOOP_FILE = "loop.json"  # {"loop_s": seconds of the training epoch}, written by every process
CLOCK = "+callbacks.epoch_clock._target_=benchmarks.harness.EpochClock"


def variant(text: str) -> Variant:
    """A variant of VARIANTS by name, or a framework variant from comma-separated overrides."""
    known = {v.name: v for v in VARIANTS}
    if text in known:
        return known[text]
    if "=" in text:
        return Variant(text, "framework", tuple(text.split(",")))
    raise argparse.ArgumentTypeError(f"unknown variant {text!r}: one of {', '.join(known)}, or "
                                     "comma-separated framework overrides such as callbacks.step_timer=null")


def base_overrides(batches: int, arch: str = "resnet20", width: float = 0.25, batch: int = 4,
                   image: int = 8) -> list[str]:
    """Data and model of every program: `batches` training batches (plus one held out for validation)."""
    return ["data=synthetic", f"data.batch_size={batch}", f"data.image_size={image}",
            f"data.train_size={(batches + 1) * batch}", f"data.val_size={batch}", f"data.test_size={batch}",
            "data.num_workers=0", f"arch={arch}", f"arch.width={width}", "trainer.max_epochs=1",
            "trainer.accelerator=cpu", "trainer.devices=1", "logger.wandb.mode=offline"]


def near_free_model(datamodule: Any) -> nn.Module:
    size = datamodule.image_size
    return nn.Sequential(nn.Flatten(), nn.Linear(datamodule.in_channels * size * size, datamodule.num_classes))


def train(program: str, overrides: Sequence[str], out: Path, near_free: bool = False,
          before_fit: Callable[[harness.Parts], None] | None = None) -> harness.Stamps:
    """One epoch of `program` in this process; its clock stamps."""
    from hydra.utils import instantiate

    if program == "framework":
        import wandb

        def prepare(parts: harness.Parts) -> None:
            if near_free:
                parts.module.model = near_free_model(parts.datamodule)
            if before_fit is not None:
                before_fit(parts)
        try:
            parts = harness.framework_fit(harness.compose_run_config([*overrides, CLOCK], out), prepare)
        finally:
            if wandb.run is not None:  # the next fit would otherwise log into this run
                wandb.finish()
        return harness.callback(parts, "EpochClock").epochs
    cfg = harness.compose_run_config(overrides, out)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    model = near_free_model(datamodule) if near_free else harness.run_model(cfg, datamodule)
    if program == "plain":
        datamodule.setup("fit")
        return harness.plain_loop(model, harness.make_optimizer(cfg, model), datamodule.train_dataloader, 1,
                                  torch.device("cpu"))
    clock = harness.EpochClock()
    with harness.quiet():
        harness.bare_trainer(out, 1, [clock]).fit(harness.BareClassifier(model, cfg), datamodule=datamodule)
    return clock.epochs


def process_command(v: Variant, overrides: Sequence[str], out: Path) -> list[str]:
    """The framework as `python -m resnet_exp.run`; the other programs through this module's main."""
    if v.program == "framework":
        return [sys.executable, "-m", "resnet_exp.run", *overrides, CLOCK,
                f"+callbacks.epoch_clock.output_file={out / LOOP_FILE}", f"hydra.run.dir={out}"]
    return [sys.executable, "-m", "benchmarks.overhead", v.program, str(out), "--", *overrides]


def time_process(cmd: Sequence[str], env: dict[str, str], loop_file: Path) -> dict[str, float]:
    """Wall seconds of one process, and of its training loop as the process wrote it to `loop_file`."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"loop": json.loads(loop_file.read_text())["loop_s"], "wall": wall}


def measure_overhead(variants: Sequence[Variant], steps: Sequence[int] = (20, 2020), rounds: int = 5,
                     arch: str = "resnet20", width: float = 0.25, threads: int = 1,
                     log: Callable[[str], None] = print) -> dict[str, Any]:
    """Per variant and round, ms per training batch (training loop and whole process)."""
    n1, n2 = steps
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), WANDB_SILENT="true")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(harness.REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    per_round: dict[str, dict[str, list[float]]] = {v.name: {"loop": [], "wall": []} for v in variants}
    work = Path(tempfile.mkdtemp(prefix="resnet_exp_overhead_"))
    try:
        for r in range(rounds):
            for i, v in enumerate(harness.rotated(variants, r)):
                times = {}
                for n in (n1, n2):
                    out = work / f"{r}_{i}_{n}"
                    out.mkdir(parents=True)
                    cmd = process_command(v, [*base_overrides(n, arch, width), *v.overrides], out)
                    times[n] = time_process(cmd, env, out / LOOP_FILE)
                for key, values in per_round[v.name].items():
                    values.append((times[n2][key] - times[n1][key]) / (n2 - n1) * 1e3)
            log(f"  round {r + 1}/{rounds}: training loop ms/step " + ", ".join(
                f"{name} {v['loop'][-1]:.2f}" for name, v in per_round.items()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"unit": "ms", "per_round": per_round, "summary": harness.summarize(per_round, BASELINES)}


def measure_attribution(variants: Sequence[Variant], steps: int = 2000, rounds: int = 3, threads: int = 1,
                        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Per variant and round, mean us per training batch on the near-free model; then the CPU time
    inside each callback's hooks in one fit of the first framework variant."""
    torch.set_num_threads(threads)
    per_round: dict[str, dict[str, list[float]]] = {v.name: {"wall": []} for v in variants}
    work = Path(tempfile.mkdtemp(prefix="resnet_exp_attribution_"))
    try:
        for r in range(rounds):
            for i, v in enumerate(harness.rotated(variants, r)):
                epochs = train(v.program, [*base_overrides(steps), *v.overrides], work / f"{r}_{i}", near_free=True)
                per_round[v.name]["wall"].append(harness.mean_step_ms(epochs, skip=0) * 1e3)
            log(f"  round {r + 1}/{rounds}: us/step " + ", ".join(
                f"{name} {v['wall'][-1]:.0f}" for name, v in per_round.items()))
        hooks = callback_hooks(next((v for v in variants if v.program == "framework"), None), steps, work / "hooks")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"unit": "us", "per_round": per_round, "summary": harness.summarize(per_round, BASELINES),
            "hooks": hooks}


def callback_hooks(v: Variant | None, steps: int, out: Path) -> dict[str, Any] | None:
    """CPU time inside each callback's hooks (summed per class) in one fit of `v`."""
    if v is None:
        return None
    timers: list[tuple[str, harness.HookTimer]] = []

    def instrument(parts: harness.Parts) -> None:
        timers.extend((type(cb).__name__, harness.HookTimer(cb)) for cb in parts.trainer.callbacks)

    train(v.program, [*base_overrides(steps), *v.overrides], out, near_free=True, before_fit=instrument)
    rows: dict[str, dict[str, float]] = {}
    for name, timer in timers:
        row = rows.setdefault(name, {"count": 0, "us_per_batch": 0.0, "ms_per_epoch": 0.0})
        row["count"] += 1
        row["us_per_batch"] += timer.us_per_batch()
        row["ms_per_epoch"] += timer.ms_per_epoch()
    return {"variant": v.name, "callbacks": rows}


def main(argv: list[str] | None = None) -> None:
    """A child process of the overhead measurement: one epoch of the plain or the bare Lightning program."""
    p = OneLineArgumentParser(prog="python -m benchmarks.overhead",
                              description="One epoch of a program, for `python -m benchmarks --sections overhead`.")
    p.add_argument("program", choices=("plain", "lightning"))
    p.add_argument("out", type=Path, help="folder; the training loop's seconds go to loop.json there")
    p.add_argument("overrides", nargs="*", help="resnet_exp.run overrides (data, model, optimizer)")
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    harness.write_loop_seconds(args.out / LOOP_FILE, train(args.program, args.overrides, args.out))


if __name__ == "__main__":
    main()
