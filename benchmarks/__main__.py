"""Measure the framework and regenerate BENCHMARKS.md.

    python -m benchmarks                                   # every section (gpu only where CUDA is)
    python -m benchmarks --sections overhead --overhead-rounds 9
    python -m benchmarks --sections attribution --attribution-variants plain framework callbacks.lr_monitor=null
    python -m benchmarks --sections loader --loader-augment standard trivialaugment randaugment autoaugment mix
    python -m benchmarks --render                          # measure nothing, regenerate from the JSON files

Sections: overhead (the framework against a plain loop and bare Lightning, as whole processes),
attribution (where that overhead goes, in one process), compile_cpu, loader, gpu. A measured section
replaces benchmarks/results/<section>.json (machine, date, command, settings, per-round and summary
figures); then BENCHMARKS.md is rendered from all the JSON files (benchmarks/render.py).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import shlex
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from benchmarks import render
from benchmarks.loader import AUGMENTS
from benchmarks.overhead import OVERHEAD_VARIANTS, VARIANTS, variant
from resnet_exp.errors import OneLineArgumentParser
from resnet_exp.io import write_json_atomic
from resnet_exp.speed import environment

# section -> its measuring function in benchmarks/, called with the section's settings as keyword arguments
MEASURE = {"overhead": "overhead.measure_overhead", "attribution": "overhead.measure_attribution",
           "compile_cpu": "compile_cpu.measure", "loader": "loader.measure", "gpu": "gpu.measure"}
log = functools.partial(print, file=sys.stderr, flush=True)


def parse(argv: list[str]) -> argparse.Namespace:
    p = OneLineArgumentParser(prog="python -m benchmarks", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", nargs="+", choices=MEASURE, help="default: all (gpu only where CUDA is available)")
    p.add_argument("--render", action="store_true", help="measure nothing; regenerate BENCHMARKS.md")
    p.add_argument("--dry-run", action="store_true", help="print each section's settings; measure and write nothing")
    p.add_argument("--results-dir", type=Path, default=render.RESULTS_DIR)
    p.add_argument("--output", type=Path, default=render.OUTPUT, help="the Markdown file to write")
    names = ", ".join(v.name for v in VARIANTS)
    p.add_argument("--overhead-steps", type=int, nargs=2, default=[20, 2020], metavar=("N1", "N2"),
                   help="training batches of the short and of the long process")
    p.add_argument("--overhead-rounds", type=int, default=5)
    p.add_argument("--overhead-variants", nargs="+", type=variant, default=[variant(n) for n in OVERHEAD_VARIANTS],
                   metavar="VARIANT", help=f"names ({names}) or comma-separated framework overrides; default: "
                                           + " ".join(OVERHEAD_VARIANTS))
    p.add_argument("--attribution-steps", type=int, default=2000, help="training batches per fit")
    p.add_argument("--attribution-rounds", type=int, default=3)
    p.add_argument("--attribution-variants", nargs="+", type=variant, default=list(VARIANTS), metavar="VARIANT",
                   help="as --overhead-variants; default: all named ones")
    p.add_argument("--loader-augment", nargs="+", choices=list(AUGMENTS), default=["standard"],
                   help="augmentation settings, one table row per path each (mix: standard + random erasing "
                        "0.25 + MixUp 0.2 / CutMix 1.0)")
    p.add_argument("--loader-consumer", choices=("none", "resnet18"), default="none",
                   help="also time a ResNet-18 train step on the loader's device")
    p.add_argument("--gpu-parts", nargs="+", choices=("training", "switches", "v2_timing"),
                   default=["training", "switches", "v2_timing"],
                   help="measure only these; the others are kept from gpu.json when it is from the same GPU")
    args = p.parse_args(argv)
    n1, n2 = args.overhead_steps
    if not 0 < n1 < n2:
        p.error(f"--overhead-steps {n1} {n2}: need 0 < N1 < N2")
    if min(args.overhead_rounds, args.attribution_rounds) < 1 or args.attribution_steps < 2:
        p.error("rounds must be at least 1, --attribution-steps at least 2")
    return args


def settings(section: str, a: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of the section's measuring function, as its JSON records them."""
    return {
        "overhead": {"variants": a.overhead_variants, "steps": a.overhead_steps, "rounds": a.overhead_rounds,
                     "arch": "resnet20", "width": 0.25, "batch_size": 4, "image_size": 8, "threads": 1},
        "attribution": {"variants": a.attribution_variants, "steps": a.attribution_steps,
                        "rounds": a.attribution_rounds, "threads": 1},
        "compile_cpu": {"arch": "resnet20", "image_size": 32, "batch_size": 32, "burn_in": 3, "batches": 10,
                        "threads": 1},
        "loader": {"size": 50000, "batch_size": 512, "batches": 40, "workers": [0, 2], "threads": 1,
                   "consumer": a.loader_consumer, "augment": a.loader_augment},
        "gpu": {"archs": ["resnet18", "resnet50"], "parts": a.gpu_parts, "batch_size": 512, "steps": 30, "epochs": 3},
    }[section]


def code_version() -> str | None:
    """The checkout's commit, `-dirty` when tracked files differ from it; None outside git."""
    try:
        git = subprocess.run(["git", "-C", str(render.OUTPUT.parent), "describe", "--always", "--dirty"],
                             capture_output=True, text=True)
    except OSError:
        return None
    return git.stdout.strip() or None


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    default = [s for s in MEASURE if s != "gpu" or torch.cuda.is_available()]
    for section in [] if args.render else args.sections or default:
        s = settings(section, args)
        recorded = {k: [asdict(x) for x in v] if k == "variants" else v for k, v in s.items()}
        if args.dry_run:
            print(f"{section}: {json.dumps(recorded)}")
            continue
        if section == "gpu" and not torch.cuda.is_available():
            log("gpu: no CUDA device here; skipped (gpu.json, if any, is kept)")
            continue
        log(f"{section}: measuring")
        previous = args.results_dir / "gpu.json"  # the parts measured before on the same GPU are kept
        if section == "gpu" and previous.exists():
            s["previous"] = json.loads(previous.read_text())["results"]
        module, function = MEASURE[section].split(".")
        results = getattr(importlib.import_module(f"benchmarks.{module}"), function)(**s, log=log)
        args.results_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.results_dir / f"{section}.json", {
            "section": section, "environment": {**environment(), "code": code_version()},
            "command": shlex.join(["python", "-m", "benchmarks", *argv]), "settings": recorded,
            "results": results})
    if not args.dry_run:
        args.output.write_text(render.render(args.results_dir))
        log(f"wrote {args.output}")


if __name__ == "__main__":
    main()
