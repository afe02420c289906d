"""The speedrun's switches, each turned off over the same seeds: test accuracy on and off, and the
paired difference (on - off) with its 95% Student-t interval and p-value.

    python studies/fashion_mnist_speedrun/ablation/compare.py

reads ../seeds/summary.csv (the recipe, seeds 1-3) and <switch>/summary.csv (one sweep per switch,
the same seeds with that switch off; each folder's multirun.yaml holds its command line).
"""

from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path

from resnet_exp.report.stats import compare

HERE = Path(__file__).resolve().parent


def test_accuracy_by_seed(summary_csv: Path) -> dict[str, float]:
    """{seed: test accuracy in %} of the completed jobs of one sweep's summary.csv."""
    by_seed = {}
    with summary_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["status"] == "completed" and row["test_acc"]:
                seed = next(o.split("=", 1)[1] for o in row["overrides"].split() if o.startswith("seed="))
                by_seed[seed] = 100 * float(row["test_acc"])
    return by_seed


def main() -> int:
    recipe = test_accuracy_by_seed(HERE.parent / "seeds" / "summary.csv")
    print("| switch turned off | n | recipe test % | switch off test % | on - off, points (95% interval) | p |")
    print("|---|---:|---:|---:|---:|---:|")
    for folder in sorted(p for p in HERE.iterdir() if (p / "summary.csv").is_file()):
        off = test_accuracy_by_seed(folder / "summary.csv")
        seeds = sorted(set(recipe) & set(off))
        on_values, off_values = [recipe[s] for s in seeds], [off[s] for s in seeds]
        result = compare([(s, recipe[s]) for s in seeds], [(s, off[s]) for s in seeds])  # paired by seed
        print(f"| {folder.name} | {len(seeds)} | {statistics.fmean(on_values):.2f} | "
              f"{statistics.fmean(off_values):.2f} | {result.diff_mean:+.2f} ({result.low:+.2f} to {result.high:+.2f}) | "
              f"{result.p_value:.2g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
