"""The committed studies say what their own files say: each group's mean and 95% interval in the
block-order study, recomputed here from the per-job rows (mean, sd, Student-t quantile); the speedrun's
record meets the recipe's figure; the README quotes both as they are."""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import defaultdict

import pytest
from scipy import stats

from resnet_exp.config import CONF_DIR
from tests.helpers.cli import REPO_ROOT

STUDIES = REPO_ROOT / "studies"
README = (REPO_ROOT / "README.md").read_text()


def rows(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_block_order_groups_are_the_mean_and_t_interval_of_their_jobs() -> None:
    study = STUDIES / "block_order_fashion_mnist"
    jobs = defaultdict(list)
    for job in rows(study / "summary.csv"):
        assert job["status"] == "completed"
        jobs[(job["depth"], job["block_order"])].append(float(job["test_acc"]))
    groups = rows(study / "groups.csv")
    assert len(groups) == 10 and sum(len(v) for v in jobs.values()) == 30
    for group in groups:
        accs = jobs[(group["arch.depth"], group["arch.block_order"])]
        mean, sd = statistics.mean(accs), statistics.stdev(accs)
        half = stats.t.ppf(0.975, len(accs) - 1) * sd / math.sqrt(len(accs))
        assert int(group["n"]) == len(accs) == 3
        assert float(group["test/acc_mean"]) == pytest.approx(mean, abs=1e-5)
        assert float(group["test/acc_ci_low"]) == pytest.approx(mean - half, abs=1e-5)
        assert float(group["test/acc_ci_high"]) == pytest.approx(mean + half, abs=1e-5)
        quoted = f"{100 * mean:.2f} ({100 * (mean - half):.2f}-{100 * (mean + half):.2f})"
        assert quoted in (study / "README.md").read_text(), quoted


def test_block_order_finding_no_order_pair_excludes_zero_on_test() -> None:
    """The README's finding, read off comparisons.csv: every order pair's test interval holds zero."""
    pairs = [r for r in rows(STUDIES / "block_order_fashion_mnist" / "comparisons.csv")
             if r["key"] == "arch.block_order" and r["metric"] == "test/acc"]
    assert len(pairs) == 20
    assert all(float(r["ci_low"]) <= 0 <= float(r["ci_high"]) for r in pairs)
    assert max(abs(float(r["diff_mean"])) for r in pairs) <= 0.0016
    assert "No block order differs from another beyond seed noise" in README


def test_speedrun_record_meets_the_recipe_figure() -> None:
    results = json.loads((STUDIES / "fashion_mnist_speedrun" / "results.json").read_text())
    assert results["status"] == "completed" and results["data"] == "fashion_mnist"
    assert results["test/acc"] >= 0.930 and results["wall_time_s"] <= 600
    assert results["overrides"] == ["experiment=fashion_mnist_speedrun"]
    assert f"{100 * results['test/acc']:.2f}% test" in README


def test_speedrun_ablation_is_the_paired_difference_of_its_sweeps() -> None:
    """Each switch turned off over the recipe's seeds: the on - off difference and its 95% interval,
    computed here by hand (mean and sd of the per-seed differences, Student-t quantile), as the study's
    README quotes them."""
    speedrun = STUDIES / "fashion_mnist_speedrun"

    def by_seed(path):
        return {next(o for o in r["overrides"].split() if o.startswith("seed=")): 100 * float(r["test_acc"])
                for r in rows(path) if r["status"] == "completed"}

    recipe = by_seed(speedrun / "seeds" / "summary.csv")
    switches = sorted(p for p in (speedrun / "ablation").iterdir() if (p / "summary.csv").is_file())
    assert switches, "no ablation sweep committed"
    text = (speedrun / "README.md").read_text()
    header = (CONF_DIR / "experiment" / "fashion_mnist_speedrun.yaml").read_text()
    for folder in switches:
        off = by_seed(folder / "summary.csv")
        assert sorted(off) == sorted(recipe) == ["seed=1", "seed=2", "seed=3"]
        diffs = [recipe[s] - off[s] for s in sorted(off)]
        mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
        half = 4.302653 * sd / math.sqrt(3)  # t(0.975, 2 df)
        quoted = f"{mean:+.2f} ({mean - half:+.2f} to {mean + half:+.2f})"
        assert f"| {folder.name} |" in text and quoted in text, quoted
        assert quoted in header, f"the recipe's header does not quote {folder.name}: {quoted}"
