"""Measure the framework and regenerate BENCHMARKS.md.

    python -m benchmarks                                   # every section (gpu only where CUDA is)
    python -m benchmarks --sections overhead --overhead-rounds 9
    python -m benchmarks --sections attribution --attribution-variants plain framework callbacks.lr_monitor=null
    python -m benchmarks --render                          # measure nothing, regenerate from the JSON files

Sections: overhead (framework vs plain loop vs bare Lightning, whole processes: the headline),
attribution (where that overhead goes, in one process), compile_cpu, loader, gpu. Each measured
section replaces benchmarks/results/<section>.json (machine, date, command, settings, raw and summary
figures); then BENCHMARKS.md is rendered from all the JSON files (benchmarks/render.py).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from benchmarks import render
from benchmarks.overhead import OVERHEAD_VARIANTS, VARIANTS, variant
from resnet_exp.errors import OneLineArgumentParser
from resnet_exp.io import write_json_atomic
from resnet_exp.speed import environment

SECTIONS = ("overhead", "attribution", "compile_cpu", "loader", "gpu")
START_THREADS = torch.get_num_threads()  # before any section sets its own


def parse(argv: list[str]) -> argparse.Namespace:
    p = OneLineArgumentParser(prog="python -m benchmarks", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", nargs="+", choices=SECTIONS, help="default: all (gpu only where CUDA is available)")
    p.add_argument("--render", action="store_true", help="measure nothing; regenerate BENCHMARKS.md")
    p.add_argument("--dry-run", action="store_true", help="print each section's settings; measure and write nothing")
    p.add_argument("--results-dir", type=Path, default=render.RESULTS_DIR)
    p.add_argument("--output", type=Path, default=render.OUTPUT, help="the Markdown file to write")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (overhead, attribution, compile_cpu)")
    g = p.add_argument_group("overhead")
    g.add_argument("--overhead-steps", type=int, nargs=2, default=[20, 2020], metavar=("N1", "N2"),
                   help="training batches of the short and of the long process")
    g.add_argument("--overhead-rounds", type=int, default=5)
    g.add_argument("--overhead-variants", nargs="+", type=variant, default=[variant(n) for n in OVERHEAD_VARIANTS],
                   metavar="VARIANT", help=f"names ({', '.join(v.name for v in VARIANTS)}) or comma-separated "
                                           "framework overrides; default: " + " ".join(OVERHEAD_VARIANTS))
    g = p.add_argument_group("attribution")
    g.add_argument("--attribution-steps", type=int, default=2000, help="training batches per fit")
    g.add_argument("--attribution-rounds", type=int, default=3)
    g.add_argument("--attribution-variants", nargs="+", type=variant, default=list(VARIANTS), metavar="VARIANT",
                   help="as --overhead-variants; default: all named variants")
    g = p.add_argument_group("compile_cpu")
    g.add_argument("--compile-batches", type=int, default=10, help="timed batches per variant")
    g = p.add_argument_group("loader")
    g.add_argument("--loader-batches", type=int, default=40, help="timed batches per path")
    g.add_argument("--loader-workers", type=int, nargs="+", default=[0, 2], help="num_workers of the torch loader")
    g.add_argument("--loader-threads", type=int, default=None, help="torch threads (default: torch's own)")
    g.add_argument("--loader-consumer", choices=("none", "resnet18"), default="none",
                   help="also time a ResNet-18 train step on the same device")
    g = p.add_argument_group("gpu")
    g.add_argument("--gpu-archs", nargs="+", default=["resnet18", "resnet50"])
    g.add_argument("--gpu-parts", nargs="+", choices=("training", "switches", "v2_timing"),
                   default=["training", "switches", "v2_timing"],
                   help="measure only these; the others are kept from gpu.json when it is from the same GPU")
    g.add_argument("--gpu-steps", type=int, default=30, help="training batches per epoch")
    args = p.parse_args(argv)
    n1, n2 = args.overhead_steps
    if not 0 < n1 < n2:
        p.error(f"--overhead-steps {n1} {n2}: need 0 < N1 < N2")
    if min(args.overhead_rounds, args.attribution_rounds, args.threads) < 1 or args.attribution_steps < 2:
        p.error("rounds and --threads must be at least 1, --attribution-steps at least 2")
    return args


def settings(section: str, args: argparse.Namespace) -> dict[str, Any]:
    """What a section measures with, as recorded in its JSON (and passed to its `measure`)."""
    from dataclasses import asdict

    return {
        "overhead": lambda: {"arch": "resnet20", "width": 0.25, "batch_size": 4, "image_size": 8,
                             "steps": args.overhead_steps, "rounds": args.overhead_rounds, "threads": args.threads,
                             "variants": [asdict(v) for v in args.overhead_variants]},
        "attribution": lambda: {"steps": args.attribution_steps, "rounds": args.attribution_rounds,
                                "threads": args.threads, "variants": [asdict(v) for v in args.attribution_variants]},
        "compile_cpu": lambda: {"arch": "resnet20", "image_size": 32, "batch_size": 32, "burn_in": 3,
                                "batches": args.compile_batches, "threads": args.threads},
        "loader": lambda: {"size": 50000, "batch_size": 512, "batches": args.loader_batches,
                           "workers": args.loader_workers, "threads": args.loader_threads or START_THREADS,
                           "consumer": args.loader_consumer},
        "gpu": lambda: {"archs": args.gpu_archs, "parts": args.gpu_parts, "batch_size": 512,
                        "steps": args.gpu_steps, "epochs": 3},
    }[section]()


def measure(section: str, s: Mapping[str, Any], args: argparse.Namespace, results_dir: Path) -> dict[str, Any]:
    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if section == "overhead":
        from benchmarks import overhead

        return overhead.measure_overhead(args.overhead_variants, s["steps"], s["rounds"], s["arch"], s["width"],
                                         s["threads"], log)
    if section == "attribution":
        from benchmarks import overhead

        return overhead.measure_attribution(args.attribution_variants, s["steps"], s["rounds"], s["threads"], log)
    if section == "compile_cpu":
        from benchmarks import compile_cpu

        return compile_cpu.measure(s["arch"], s["image_size"], s["batch_size"], s["burn_in"], s["batches"],
                                   s["threads"], log)
    if section == "loader":
        from benchmarks import loader

        return loader.measure(s["size"], s["batch_size"], s["batches"], s["workers"], None, s["consumer"],
                              s["threads"], log)
    from benchmarks import gpu

    previous = results_dir / "gpu.json"
    kept = json.loads(previous.read_text())["results"] if previous.exists() else None
    return gpu.measure(s["batch_size"], s["steps"], s["epochs"], s["archs"], s["parts"], kept, log)


def code_version() -> str | None:
    """The checkout's commit, with `+dirty` when tracked files differ from it; None outside git."""
    git = ["git", "-C", str(render.OUTPUT.parent)]
    try:
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    sections = args.sections or [s for s in SECTIONS if s != "gpu" or torch.cuda.is_available()]
    for section in [] if args.render else sections:
        s = settings(section, args)
        if args.dry_run:
            print(f"{section}: {s}")
            continue
        if section == "gpu" and not torch.cuda.is_available():
            print("gpu: no CUDA device here; skipped (gpu.json, if any, is kept)", file=sys.stderr)
            continue
        print(f"{section}: measuring", file=sys.stderr, flush=True)
        results = measure(section, s, args, args.results_dir)
        record = {"section": section, "environment": {**environment(), "code": code_version()},
                  "command": " ".join(["python -m benchmarks", *map(shlex.quote, argv)]), "settings": s,
                  "results": results}
        args.results_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.results_dir / f"{section}.json", record)
    if not args.dry_run:
        print(f"wrote {render.write(args.results_dir, args.output)}", file=sys.stderr)


if __name__ == "__main__":
    main()
