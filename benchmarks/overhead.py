"""Framework overhead per training step, measured on whole processes.

    python -m benchmarks.overhead [--steps 20 2020] [--rounds 5]

Three programs train the same model (resnet20 width 0.25 by default) on the same batches (the
framework's synthetic datamodule, batch 4 x 8 px, no workers), with the same optimizer, one epoch:

- plain: a textbook PyTorch loop (zero_grad, forward, cross-entropy, backward, step);
- lightning: a bare LightningModule (forward + loss) in a Trainer with logger, checkpoints,
  progress bar and model summary off;
- framework: `python -m resnet_exp.run data=synthetic ...` as shipped: default callbacks (step
  timer, progress bar, checkpoints, LR monitor, model summary) and loggers (CSV, wandb offline).

Each program runs twice, as a whole process, with N1 and N2 training batches, and writes the wall time
of its training epoch (harness.EpochClock, from the epoch's start to its end: one perf_counter per
batch, the same in all three; for the framework an extra callback). The headline, "training loop",
is (loop(N2) - loop(N1)) / (N2 - N1): the time per training batch with everything a batch costs in
that process, and none of the start-up, validation, test and teardown, whose time varies by seconds
from one framework process to the next (Hydra, wandb's service; once 40 s). "whole process" is the
same difference of the processes' wall times, as the issue first measured it: it holds the same
per-batch costs plus that noise. Rounds interleave the programs so that load from other processes
hits all alike; each program's figure is its median over rounds, and its excess over the plain loop
the median over rounds of its difference from the plain loop *in the same round* (range in
brackets). Medians, not best-of, which would pick the lucky processes of the noisiest program.
Threads: one intra-op thread everywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

PROGRAMS = ("plain", "lightning", "framework")
CLOCKS = ("loop", "wall", "cpu")
LOOP_FILE = "loop.json"  # {"loop_s": seconds inside the training epoch}, written by each program
LABELS = {"plain": "plain PyTorch loop", "lightning": "bare LightningModule in a Trainer (extras off)",
          "framework": "framework as shipped (`resnet_exp.run`, default callbacks and loggers)"}


def run_overrides(arch: str, width: float, batch: int, image: int, batches: int) -> list[str]:
    """`resnet_exp.run` overrides shared by the three programs (the data and model they train):
    `batches` training batches, plus one batch held out of the synthetic train split for validation."""
    return [
        "data=synthetic", f"data.batch_size={batch}", f"data.image_size={image}",
        f"data.train_size={(batches + 1) * batch}", f"data.val_size={batch}", f"data.test_size={batch}",
        "data.num_workers=0", f"arch={arch}", f"arch.width={width}", "trainer.max_epochs=1",
        "trainer.accelerator=cpu", "trainer.devices=1", "logger.wandb.mode=offline",
    ]


# ---------------------------------------------------------------------------- the worker programs
def _worker(kind: str, overrides: Sequence[str], out: Path) -> None:
    """Train one epoch as `kind` (plain or lightning) on the framework's data and model."""
    import torch
    from hydra.utils import instantiate

    from benchmarks import harness

    cfg = harness.compose_run_config(overrides, out)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    model = harness.run_model(cfg, datamodule)
    if kind == "plain":
        datamodule.setup("fit")
        optimizer = harness.make_optimizer(cfg, model)
        epochs = harness.plain_loop(model, optimizer, datamodule.train_dataloader, 1, torch.device("cpu"))
        harness.write_loop_seconds(out / LOOP_FILE, epochs)
        return
    clock = harness.EpochClock(output_file=str(out / LOOP_FILE))
    harness.bare_trainer(out, 1, [clock]).fit(harness.BareClassifier(model, cfg), datamodule=datamodule)


def command(kind: str, overrides: Sequence[str], out: Path) -> list[str]:
    if kind == "framework":
        clock = ["+callbacks.epoch_clock._target_=benchmarks.harness.EpochClock",
                 f"+callbacks.epoch_clock.output_file={out / LOOP_FILE}"]
        return [sys.executable, "-m", "resnet_exp.run", *overrides, *clock, f"hydra.run.dir={out}"]
    return [sys.executable, "-m", "benchmarks.overhead", "--worker", kind, "--out", str(out),
            "--", *overrides]


def child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), WANDB_SILENT="true")
    root = str(Path(__file__).resolve().parents[3])  # this checkout, for `python -m resnet_exp...`
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return env


def time_process(cmd: Sequence[str], env: dict[str, str], loop_file: Path | None = None) -> dict[str, float]:
    """Wall and CPU seconds (user + system of the child and its children) of one process, and the
    seconds of its training loop that the process wrote to `loop_file`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    times = {"wall": wall, "cpu": cpu}
    if loop_file is not None:
        times["loop"] = json.loads(loop_file.read_text())["loop_s"]
    return times


# ---------------------------------------------------------------------------- measuring
def summarize(per_round: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """Per program: `median` ms/step over rounds, and (all but the plain loop) `over_plain`, the median
    over rounds of its excess over the plain loop in the same round, with its `range` over rounds."""
    out: dict[str, Any] = {}
    plain = per_round.get("plain")
    for kind, clocks in per_round.items():
        out[kind] = {"median": {key: statistics.median(v) for key, v in clocks.items()}}
        if plain is not None and kind != "plain":
            diffs = {key: [a - b for a, b in zip(v, plain[key])] for key, v in clocks.items()}
            out[kind]["over_plain"] = {key: statistics.median(d) for key, d in diffs.items()}
            out[kind]["range"] = {key: [min(d), max(d)] for key, d in diffs.items()}
    return out


def measure(arch: str = "resnet20", width: float = 0.25, batch: int = 4, image: int = 8,
            steps: Sequence[int] = (20, 2020), rounds: int = 5, threads: int = 1,
            programs: Sequence[str] = PROGRAMS, extra: Sequence[str] = (),
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """Per program and round: ms per training batch from the N1 / N2 process pair; see `summarize`."""
    n1, n2 = steps
    if not 0 < n1 < n2:
        raise ValueError(f"--steps {n1} {n2}: need 0 < N1 < N2")
    if rounds < 1:
        raise ValueError(f"--rounds {rounds}: need at least 1")
    env = child_env(threads)
    work = Path(tempfile.mkdtemp(prefix="resnet_exp_overhead_"))
    per_round: dict[str, dict[str, list[float]]] = {p: {key: [] for key in CLOCKS} for p in programs}
    try:
        for r in range(rounds):
            order = list(programs[r % len(programs):]) + list(programs[:r % len(programs)])
            for kind in order:
                times = {}
                for n in (n1, n2):
                    ov = run_overrides(arch, width, batch, image, n) + (list(extra) if kind == "framework" else [])
                    out = work / f"{kind}_{r}_{n}"
                    out.mkdir(parents=True)
                    times[n] = time_process(command(kind, ov, out), env, out / LOOP_FILE)
                for key in CLOCKS:
                    per_round[kind][key].append((times[n2][key] - times[n1][key]) / (n2 - n1) * 1e3)
            log(f"  round {r + 1}/{rounds}: training loop ms/step " + ", ".join(
                f"{k} {v['loop'][-1]:.2f}" for k, v in per_round.items()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"arch": arch, "width": width, "batch_size": batch, "image_size": image, "steps": [n1, n2],
            "rounds": rounds, "threads": threads, "extra": list(extra), "per_round": per_round,
            "summary": summarize(per_round)}


def table(result: dict[str, Any]) -> str:
    """The three figures side by side, and each one's excess over the plain loop (with its range)."""
    summary = result["summary"]
    lines = ["| program | training loop ms/step | over plain (range) | whole process ms/step | over plain (range) |",
             "|---|---:|---:|---:|---:|"]
    for kind in PROGRAMS:
        if kind not in summary:
            continue
        s = summary[kind]
        cells = []
        for key in ("loop", "wall"):
            over = ""
            if "over_plain" in s:
                low, high = s["range"][key]
                over = f"{s['over_plain'][key]:+.2f} ({low:+.2f} to {high:+.2f})"
            cells += [f"{s['median'][key]:.2f}", over]
        lines.append(f"| {LABELS[kind]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser, prefix: str = "") -> None:
    p.add_argument(f"--{prefix}arch", default="resnet20")
    p.add_argument(f"--{prefix}width", type=float, default=0.25)
    p.add_argument(f"--{prefix}batch-size", type=int, default=4)
    p.add_argument(f"--{prefix}image-size", type=int, default=8)
    p.add_argument(f"--{prefix}steps", type=int, nargs=2, default=[20, 2020], metavar=("N1", "N2"),
                   help="training batches of the short and the long process")
    p.add_argument(f"--{prefix}rounds", type=int, default=5)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.overhead", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--programs", nargs="+", choices=PROGRAMS, default=list(PROGRAMS))
    p.add_argument("--worker", choices=("plain", "lightning"), help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", help="extra `resnet_exp.run` overrides for the framework program "
                                                 "(after --), e.g. callbacks.step_timer=null")
    args = p.parse_args(argv)
    if args.worker:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        return _worker(args.worker, args.overrides, Path(args.out))
    result = measure(args.arch, args.width, args.batch_size, args.image_size, args.steps, args.rounds,
                     args.threads, args.programs, args.overrides,
                     log=lambda m: print(m, file=sys.stderr, flush=True))
    print(table(result))


if __name__ == "__main__":
    main()
