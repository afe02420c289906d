"""Where the framework's time per training step goes, in microseconds.

    python -m benchmarks.attribution [--steps 2000] [--rounds 3] [VARIANT ...]

The whole-process comparison (overhead.py) answers "how much", on a real model, with this machine's
noise of +-10% per process. This answers "where": everything runs in one process on a model that
costs almost nothing (Flatten + Linear on the synthetic 8 px images, batch 4, no workers), so a
step takes well under a millisecond and parts of 10 us stand out. Programs, interleaved in rounds,
one epoch each over the same batches:

- plain: the textbook loop (harness.plain_loop);
- bare Lightning: a forward + loss LightningModule, logger, checkpoints, bar and summary off;
- framework: `resnet_exp.run`'s parts as built for `python -m resnet_exp.run data=synthetic ...`
  (default callbacks and loggers, wandb offline), with the model swapped for the near-free one;
- one more framework program per VARIANT: comma-separated overrides, e.g. `callbacks.step_timer=null`
  or `logger.wandb=null,callbacks.lr_monitor=null`.

Figure: mean wall time per training batch over the epoch (logging steps included). "over plain" is
the median over rounds of the difference from the plain loop in the same round.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from torch import nn

from benchmarks import harness, overhead

DEFAULT_VARIANTS = ("callbacks.step_timer=null", "logger.wandb=null", "callbacks.lr_monitor=null",
                    "callbacks.model_summary=null", "callbacks.model_checkpoint=null,callbacks.last_checkpoint=null")
CLOCK = "+callbacks.epoch_clock._target_=benchmarks.harness.EpochClock"


def near_free_model(datamodule: Any) -> nn.Module:
    size = datamodule.image_size
    return nn.Sequential(nn.Flatten(), nn.Linear(datamodule.in_channels * size * size, datamodule.num_classes))


def _plain(overrides: Sequence[str], out: Path) -> list[list[tuple]]:
    cfg = harness.compose_run_config(overrides, out)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = near_free_model(datamodule)
    return harness.plain_loop(model, harness.make_optimizer(cfg, model), datamodule.train_dataloader, 1,
                              torch.device("cpu"))


def _bare(overrides: Sequence[str], out: Path) -> list[list[tuple]]:
    cfg = harness.compose_run_config(overrides, out)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    clock = harness.EpochClock()
    with harness.quiet():
        harness.bare_trainer(out, 1, [clock]).fit(harness.BareClassifier(near_free_model(datamodule), cfg),
                                                  datamodule=datamodule)
    return clock.epochs


def _framework(overrides: Sequence[str], out: Path) -> list[list[tuple]]:
    import wandb

    def swap_model(parts: harness.Parts) -> None:
        parts.module.model = near_free_model(parts.datamodule)

    try:
        parts = harness.framework_fit(harness.compose_run_config([*overrides, CLOCK], out), before_fit=swap_model)
    finally:
        if wandb.run is not None:  # the next fit would otherwise log into this run
            wandb.finish()
    return harness.callback(parts, "EpochClock").epochs


def measure(steps: int = 2000, rounds: int = 3, variants: Sequence[str] = DEFAULT_VARIANTS,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """Mean us per training batch per program and round, and the medians (overhead.summarize)."""
    torch.set_num_threads(1)
    base = overhead.run_overrides("resnet20", 0.25, 4, 8, steps)
    programs: dict[str, Callable[[Path], list[list[tuple]]]] = {
        "plain": lambda out: _plain(base, out),
        "bare Lightning": lambda out: _bare(base, out),
        "framework": lambda out: _framework(base, out),
    }
    for variant in variants:
        programs[f"framework, {variant}"] = lambda out, v=variant: _framework([*base, *v.split(",")], out)
    per_round: dict[str, dict[str, list[float]]] = {name: {"wall": []} for name in programs}
    work = Path(tempfile.mkdtemp(prefix="resnet_exp_attribution_"))
    try:
        for r in range(rounds):
            for i, (name, program) in enumerate(programs.items()):
                epochs = program(work / f"{r}_{i}")
                per_round[name]["wall"].append(harness.step_ms(epochs, skip=0)["mean"] * 1e3)
            log(f"  round {r + 1}/{rounds}: us/step " + ", ".join(
                f"{name} {v['wall'][-1]:.0f}" for name, v in per_round.items()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"steps": steps, "rounds": rounds, "per_round": per_round, "summary": overhead.summarize(per_round)}


def table(result: dict[str, Any]) -> str:
    lines = ["| program | us/step | over plain (range) |", "|---|---:|---:|"]
    for name, s in result["summary"].items():
        over = ""
        if "over_plain" in s:
            low, high = s["range"]["wall"]
            over = f"{s['over_plain']['wall']:+.0f} ({low:+.0f} to {high:+.0f})"
        lines.append(f"| {name} | {s['median']['wall']:.0f} | {over} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.attribution", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2000, help="training batches per fit")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("variants", nargs="*", default=list(DEFAULT_VARIANTS),
                   help="framework variants, each comma-separated overrides")
    args = p.parse_args(argv)
    if args.steps < 2 or args.rounds < 1:
        p.error("--steps must be at least 2 and --rounds at least 1")
    result = measure(args.steps, args.rounds, args.variants, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(table(result))


if __name__ == "__main__":
    main()
