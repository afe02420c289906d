"""Measure and regenerate BENCHMARKS.md: `python -m benchmarks [--sections cpu gpu]`.

CPU: the framework's training step against a plain PyTorch loop, and the step timer on vs off.
GPU (CUDA only): training images/s and MFU, the step timer against a synchronize-per-batch
measurement, each speed switch, seed 001's table. Sections not produced by this script (the data
helper's "Data loaders") are kept as they are; a section not regenerated this time is kept too.
Raw results go to outputs/benchmarks/<time>/benchmarks.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from benchmarks import harness, markdown
from resnet_exp.io import write_json_atomic
from resnet_exp.speed import environment

GPU_COMMAND = "python -m benchmarks --sections gpu"
GPU_CACHE = harness.REPO_ROOT / "outputs" / "benchmarks" / "gpu_results.json"


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", nargs="+", choices=("cpu", "overhead", "compile", "gpu"), default=None,
                   help="what to measure (default: cpu, overhead and compile, plus gpu when CUDA is available)")
    p.add_argument("--output", default=str(harness.REPO_ROOT / "BENCHMARKS.md"), help="file to update")
    p.add_argument("--no-write", action="store_true", help="print the sections, leave the file alone")
    p.add_argument("--render", metavar="BENCHMARKS_JSON",
                   help="measure nothing: rewrite the sections from a raw results file of an earlier run")
    cpu = p.add_argument_group("cpu")
    cpu.add_argument("--arch", default="resnet18")
    cpu.add_argument("--width", type=float, default=0.25)
    cpu.add_argument("--image-size", type=int, default=32)
    cpu.add_argument("--batch-size", type=int, default=32)
    cpu.add_argument("--steps", type=int, default=24, help="batches per epoch")
    cpu.add_argument("--epochs", type=int, default=2, help="epochs per fit; the first is warm-up")
    cpu.add_argument("--rounds", type=int, default=7)
    cpu.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    cpu.add_argument("--probe-steps", type=int, default=100,
                     help="batches per epoch of the overhead probe (same framework, near-free model)")
    cpu.add_argument("--probe-rounds", type=int, default=5)
    over = p.add_argument_group("overhead (whole processes: plain loop, bare Lightning, framework)")
    from benchmarks import overhead

    overhead.add_arguments(over, prefix="overhead-")
    comp = p.add_argument_group("compile (eager vs torch.compile on CPU)")
    comp.add_argument("--compile-batches", type=int, default=10)
    gpu = p.add_argument_group("gpu")
    gpu.add_argument("--gpu-batch-size", type=int, default=512)
    gpu.add_argument("--gpu-steps", type=int, default=30)
    gpu.add_argument("--gpu-epochs", type=int, default=3)
    gpu.add_argument("--gpu-archs", nargs="+", default=["resnet18", "resnet50"])
    gpu.add_argument("--gpu-parts", nargs="+", choices=("training", "switches", "seed"),
                     default=["training", "switches", "seed"],
                     help="measure only these (the others are kept from the last run on the same GPU, "
                          f"{GPU_CACHE.relative_to(harness.REPO_ROOT)}); split when one command must stay short")
    return p.parse_args(argv)


def pending_gpu(existing: str, new: dict[str, str], env: Mapping[str, Any]) -> None:
    """Without GPU figures (now or from before), the GPU section says how to produce them."""
    old_gpu = [body for t, body in markdown.split_sections(existing) if t.startswith("## GPU")]
    if markdown.GPU_TITLE not in new and (not old_gpu or markdown.PENDING in old_gpu[0]):
        new[markdown.GPU_TITLE] = markdown.gpu_pending_section(
            GPU_COMMAND, f"no GPU was available when these figures were taken ({env['date']})")


def render(args: argparse.Namespace) -> None:
    """Rewrite BENCHMARKS.md's sections from an earlier run's raw results (no measuring)."""
    from benchmarks import cpu

    raw = json.loads(Path(args.render).read_text())
    env, command = raw["environment"], raw["command"]
    new: dict[str, str] = {}
    if raw.get("cpu") and raw.get("cpu_probe"):
        for part in (raw["cpu"], raw["cpu_probe"]):
            part.update(cpu.summarize(part["rounds_raw"]))
        new[markdown.CPU_TITLE] = markdown.cpu_section(raw["cpu"], raw["cpu_probe"], env, command)
    if raw.get("overhead"):
        from benchmarks import overhead

        new[markdown.OVERHEAD_TITLE] = markdown.overhead_section(raw["overhead"], overhead.table(raw["overhead"]),
                                                                 env, command)
    if raw.get("compile"):
        from benchmarks import compile_cpu

        new[markdown.COMPILE_TITLE] = markdown.compile_section(raw["compile"], compile_cpu.table(raw["compile"]),
                                                               env, command)
    if raw.get("gpu"):
        new[markdown.GPU_TITLE] = markdown.gpu_section(raw["gpu"], env, command)
    output = Path(args.output)
    existing = output.read_text() if output.exists() else ""
    pending_gpu(existing, new, env)
    text = markdown.merge(existing, new)
    print(text) if args.no_write else output.write_text(text)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.render:
        return render(args)
    command = "python -m benchmarks " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    sections = args.sections or (["cpu", "overhead", "compile"] + (["gpu"] if torch.cuda.is_available() else []))
    env = environment()
    raw: dict[str, Any] = {"environment": env, "command": command.strip()}
    new: dict[str, str] = {}

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if "cpu" in sections:
        from benchmarks import cpu

        log("cpu: framework vs plain loop, step timer on vs off")
        raw["cpu"] = cpu.run(arch=args.arch, width=args.width, image=args.image_size, batch=args.batch_size,
                             steps=args.steps, epochs=args.epochs, rounds=args.rounds, threads=args.threads,
                             log=log)
        log("cpu: overhead probe (near-free model: the framework's own cost per batch)")
        raw["cpu_probe"] = cpu.run(arch=args.arch, width=0.0625, image=8, batch=4, steps=args.probe_steps,
                                   epochs=2, rounds=args.probe_rounds, threads=args.threads, log=log)
        env["load"] = f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else env["load"]
        new[markdown.CPU_TITLE] = markdown.cpu_section(raw["cpu"], raw["cpu_probe"], env, command.strip())
    if "overhead" in sections:
        from benchmarks import overhead

        log("overhead: whole processes with N1 and N2 training batches")
        raw["overhead"] = overhead.measure(
            args.overhead_arch, args.overhead_width, args.overhead_batch_size, args.overhead_image_size,
            args.overhead_steps, args.overhead_rounds, args.threads, log=log)
        new[markdown.OVERHEAD_TITLE] = markdown.overhead_section(
            raw["overhead"], overhead.table(raw["overhead"]), environment(), command.strip())
    if "compile" in sections:
        from benchmarks import compile_cpu

        log("compile: eager vs torch.compile training step on CPU")
        raw["compile"] = compile_cpu.run(batches=args.compile_batches, threads=args.threads, log=log)
        new[markdown.COMPILE_TITLE] = markdown.compile_section(
            raw["compile"], compile_cpu.table(raw["compile"]), environment(), command.strip())
    if "gpu" in sections:
        from benchmarks import gpu

        if torch.cuda.is_available():
            log(f"gpu: {env['gpu']}")
            previous = json.loads(GPU_CACHE.read_text()) if GPU_CACHE.exists() else None
            raw["gpu"] = gpu.run(batch=args.gpu_batch_size, steps=args.gpu_steps, epochs=args.gpu_epochs,
                                 archs=args.gpu_archs, parts=args.gpu_parts, previous=previous, log=log)
            GPU_CACHE.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(GPU_CACHE, raw["gpu"])
            new[markdown.GPU_TITLE] = markdown.gpu_section(raw["gpu"], env, command.strip())
        else:
            log("gpu: no CUDA device here; the GPU section says how to produce it")
    output = Path(args.output)
    existing = output.read_text() if output.exists() else ""
    pending_gpu(existing, new, env)
    text = markdown.merge(existing, new)
    folder = harness.REPO_ROOT / "outputs" / "benchmarks" / dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "benchmarks.json", raw)
    if args.no_write:
        print(text)
    else:
        output.write_text(text)
        log(f"wrote {output} (raw results: {folder / 'benchmarks.json'})")


if __name__ == "__main__":
    main()
