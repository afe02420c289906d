"""Seed statistics of a sweep report: groups.csv, comparisons.csv, the summary.md tables, the plots'
data, and the wandb group of a seeded sweep. The statistics are checked against numbers worked out
by hand here (means, sds, t quantiles typed in from a t table, closed forms of the t distribution),
never by calling the scipy function the code calls."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra.core.hydra_config import HydraConfig

from resnet_exp.report.plots import depth_keys, depth_series, time_curves
from resnet_exp.report.stats import compare, mean_interval
from resnet_exp.report.tables import build_report
from tests.helpers.cli import explain, run_in_process
from tests.test_report import COMMON, make_job, step_time

# Two-sided 95% Student-t quantiles t(0.975, df), from a printed t table.
T_TABLE = {1: 12.706205, 2: 4.302653, 3: 3.182446, 4: 2.776445}
SQRT3 = math.sqrt(3)


def p_two_sided(t: float, df: int) -> float:
    """Closed forms of the t distribution's two-sided tail for 2 and 4 degrees of freedom."""
    t = abs(t)
    if df == 2:
        return 1 - t / math.sqrt(t * t + 2)
    if df == 4:
        x = t / math.sqrt(4 + t * t)  # F(t) = 1/2 + (3/4) x (1 - x^2 / 3)
        return 2 * (0.5 - 0.75 * x * (1 - x * x / 3))
    raise ValueError(df)


# ---------------------------------------------------------------------------- the numbers
def test_mean_interval_matches_a_hand_computation() -> None:
    est = mean_interval([0.80, 0.82, 0.84])  # mean 0.82, sd 0.02, se 0.02 / sqrt(3)
    half = T_TABLE[2] * 0.02 / SQRT3  # 0.049683
    assert (est.n, est.mean, est.sd) == (3, pytest.approx(0.82), pytest.approx(0.02))
    assert (est.low, est.high) == (pytest.approx(0.82 - half), pytest.approx(0.82 + half))
    two = mean_interval([0.85, 0.87])  # sd 0.01 * sqrt(2), se 0.01
    assert (two.low, two.high) == (pytest.approx(0.86 - T_TABLE[1] * 0.01), pytest.approx(0.86 + T_TABLE[1] * 0.01))
    one = mean_interval([0.9])
    assert (one.n, one.mean, one.sd, one.low, one.high, one.half_width) == (1, 0.9, None, None, None, None)
    assert mean_interval([]).mean is None


def test_paired_comparison_matches_a_hand_computation() -> None:
    # a - b per seed: 1, 2, 3 -> mean 2, sd 1, se 1/sqrt(3), t = 2 sqrt(3), df 2. Seeds in any order.
    result = compare([("1", 2.0), ("2", 4.0), ("3", 6.0)], [("3", 3.0), ("1", 1.0), ("2", 2.0)])
    assert (result.paired, result.n, result.n_a, result.n_b) == (True, 3, 3, 3)
    assert result.diff_mean == pytest.approx(2.0)
    half = T_TABLE[2] / SQRT3
    assert (result.low, result.high) == (pytest.approx(2 - half), pytest.approx(2 + half))
    assert result.p_value == pytest.approx(p_two_sided(2 * SQRT3, 2), abs=1e-6)  # 0.074180
    assert result.excludes_zero is False


def test_welch_comparison_matches_a_hand_computation() -> None:
    # Different seeds: Welch. Means 2 and 5, both variances 1: se^2 = 1/3 + 1/3, and the
    # Welch-Satterthwaite df = (2/3)^2 / (2 (1/3)^2 / 2) = 4.
    result = compare([("1", 1.0), ("2", 2.0), ("3", 3.0)], [("4", 4.0), ("5", 5.0), ("6", 6.0)])
    se = math.sqrt(2 / 3)
    assert (result.paired, result.n, result.n_a, result.n_b, result.df) == (False, 6, 3, 3, pytest.approx(4.0))
    assert (result.diff_mean, result.low, result.high) == (
        pytest.approx(-3.0), pytest.approx(-3 - T_TABLE[4] * se, rel=1e-5), pytest.approx(-3 + T_TABLE[4] * se, rel=1e-5))
    assert result.p_value == pytest.approx(p_two_sided(3 / se, 4), rel=1e-4)  # 0.0213
    assert result.excludes_zero is True
    # Unequal variances and sizes: var 0.0004 (n 3) and 0.0002 (n 2); se^2 = 0.0004/3 + 0.0002/2;
    # df = se^4 / ((0.0004/3)^2 / 2 + (0.0002/2)^2 / 1) = 2.882353, so t(0.975, df) lies between the
    # table's df 2 and df 3 rows, and the p between the two closed forms' bounds.
    result = compare([("1", 0.80), ("2", 0.82), ("3", 0.84)], [("1", 0.85), ("2", 0.87)])
    se2 = 0.0004 / 3 + 0.0002 / 2
    assert result.df == pytest.approx(se2 ** 2 / ((0.0004 / 3) ** 2 / 2 + (0.0002 / 2) ** 2), rel=1e-6)
    half = (result.high - result.low) / 2
    assert T_TABLE[3] * math.sqrt(se2) < half < T_TABLE[2] * math.sqrt(se2)
    assert result.diff_mean == pytest.approx(-0.04) and result.paired is False
    assert 0.0789 < result.p_value < p_two_sided(0.04 / math.sqrt(se2), 2)


def test_comparison_of_too_few_jobs_has_no_interval() -> None:
    single = compare([("1", 0.86), ("2", 0.88)], [("1", 0.90)])
    assert (single.paired, single.diff_mean) == (False, pytest.approx(-0.03))
    assert (single.low, single.high, single.p_value, single.excludes_zero) == (None, None, None, None)
    one_pair = compare([("1", 0.9)], [("1", 0.8)])
    assert (one_pair.paired, one_pair.n, one_pair.low, one_pair.diff_mean) == (True, 1, None, pytest.approx(0.1))
    # Equal arms: no spread of the differences, nothing to test (no p), an interval of width 0.
    same = compare([("1", 0.9), ("2", 0.8)], [("1", 0.9), ("2", 0.8)])
    assert (same.diff_mean, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, None)


# ---------------------------------------------------------------------------- a seeded sweep
def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


# (depth, order): per seed (test acc, best val acc, median step ms), or a status if it did not complete.
JOBS: dict[tuple[int, str], dict[int, Any]] = {
    (8, "post"): {1: (0.80, 0.81, 5.0), 2: (0.82, 0.83, 5.1), 3: (0.84, 0.85, 5.2)},
    (8, "pre"): {1: (0.81, 0.86, 5.5), 2: (0.84, 0.89, 5.7), 3: (0.87, 0.92, 5.9)},
    (14, "post"): {1: (0.85, 0.86, 8.0), 2: (0.87, 0.88, 8.2), 3: "failed"},
    (14, "pre"): {1: (0.88, 0.90, 9.0), 2: "diverged", 3: "setup failed"},
}


@pytest.fixture()
def seeded(tmp_path: Path) -> Path:
    """`arch.depth=8,14 arch.block_order=post,pre seed=1,2,3` from a recipe's sweeper params: 8 post
    and 8 pre complete (paired), 14 post lost seed 3 (failed), 14 pre has only seed 1 (one diverged,
    one failed while setting up, leaving only job_status.json)."""
    sweep = tmp_path / "seeded"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {
        "overrides": {"task": ["experiment=block_order_study", *COMMON]},
        "sweeper": {"params": {"arch.depth": "8,14", "arch.block_order": "post,pre", "seed": "1,2,3"}}}},
        sort_keys=False))
    num = 0
    for (depth, order), seeds in JOBS.items():
        for seed, outcome in seeds.items():
            overrides = [f"arch.depth={depth}", f"arch.block_order={order}", f"seed={seed}"]
            arch = {"name": "cifar_resnet", "depth": depth, "block_order": order}
            name = f"{num}-{depth}-{order}-{seed}"
            if outcome == "setup failed":
                (sweep / name).mkdir()
                (sweep / name / "job_status.json").write_text(json.dumps(
                    {"status": "failed", "error": "OSError", "job_num": num, "overrides": overrides + COMMON}))
            elif outcome == "failed":
                make_job(sweep, name, num, overrides, arch, log="Traceback (most recent call last):\nRuntimeError: x\n")
            elif outcome == "diverged":
                make_job(sweep, name, num, overrides, arch, {"status": "diverged", "val/acc_best": 0.5})
            else:
                test, val, ms = outcome
                make_job(sweep, name, num, overrides, arch, {
                    "test/acc": test, "val/acc_best": val, "depth": depth, "block_order": order,
                    "step_time": step_time(ms), "time_to_accuracy": [
                        {"train_time_s": 10.0 + seed, "val/acc": val - 0.1}, {"train_time_s": 20.0 + seed, "val/acc": val}]})
            num += 1
    return sweep


def test_groups_csv_one_row_per_configuration(seeded: Path) -> None:
    build_report(seeded)
    rows = read_csv(seeded / "groups.csv")
    assert list(rows[0])[:7] == ["arch.depth", "arch.block_order", "n", "test/acc_mean", "test/acc_sd",
                                 "test/acc_ci_low", "test/acc_ci_high"]
    assert {"val/acc_best_mean", "step_time/median_ms_ci_high", "throughput/images_per_s_sd"} <= rows[0].keys()
    assert [(r["arch.depth"], r["arch.block_order"], r["n"], r["seeds"], r["left_out"]) for r in rows] == [
        ("8", "post", "3", "1 2 3", "0"), ("8", "pre", "3", "1 2 3", "0"),
        ("14", "post", "2", "1 2", "1"), ("14", "pre", "1", "1", "2")]
    post8, post14, pre14 = rows[0], rows[2], rows[3]
    half = T_TABLE[2] * 0.02 / SQRT3
    assert float(post8["test/acc_mean"]) == pytest.approx(0.82) and float(post8["test/acc_sd"]) == pytest.approx(0.02)
    assert float(post8["test/acc_ci_low"]) == pytest.approx(0.82 - half, abs=1e-6)
    assert float(post8["test/acc_ci_high"]) == pytest.approx(0.82 + half, abs=1e-6)
    assert float(post8["step_time/median_ms_mean"]) == pytest.approx(5.1)
    assert float(post14["test/acc_ci_high"]) == pytest.approx(0.86 + T_TABLE[1] * 0.01, abs=1e-6)
    assert float(pre14["test/acc_mean"]) == 0.88  # n = 1: the value, no spread, no interval
    assert pre14["test/acc_sd"] == pre14["test/acc_ci_low"] == pre14["test/acc_ci_high"] == ""


def test_comparisons_csv_pairs_by_seed_or_uses_welch(seeded: Path) -> None:
    build_report(seeded)
    rows = read_csv(seeded / "comparisons.csv")
    assert list(rows[0]) == ["key", "a", "b", "arch.depth", "arch.block_order", "metric", "n", "paired",
                             "diff_mean", "ci_low", "ci_high", "p_value", "n_a", "n_b"]
    found = {(r["key"], r["a"], r["b"], r["arch.depth"] or r["arch.block_order"], r["metric"]): r for r in rows}
    assert len(found) == len(rows) == 4 * 4  # 2 keys x 2 held values x 4 metrics
    # Depth 8: both orders ran seeds 1-3: paired, a - b = post - pre per seed (-0.01, -0.02, -0.03).
    r = found[("arch.block_order", "post", "pre", "8", "test/acc")]
    half = T_TABLE[2] * 0.01 / SQRT3
    assert (r["paired"], r["n"], r["n_a"], r["n_b"]) == ("true", "3", "3", "3")
    assert float(r["diff_mean"]) == pytest.approx(-0.02)
    assert (float(r["ci_low"]), float(r["ci_high"])) == (pytest.approx(-0.02 - half, abs=1e-6),
                                                         pytest.approx(-0.02 + half, abs=1e-6))
    assert float(r["p_value"]) == pytest.approx(p_two_sided(0.02 / (0.01 / SQRT3), 2), abs=1e-5)
    # Post at 8 (seeds 1-3) against post at 14 (seeds 1, 2): Welch over 5 jobs.
    r = found[("arch.depth", "8", "14", "post", "test/acc")]
    assert (r["paired"], r["n"], r["n_a"], r["n_b"]) == ("false", "5", "3", "2")
    assert float(r["diff_mean"]) == pytest.approx(-0.04) and float(r["ci_low"]) < -0.04 < float(r["ci_high"])
    # 14 pre ran one job: a difference, no interval, no p.
    for key in [("arch.block_order", "post", "pre", "14", "test/acc"), ("arch.depth", "8", "14", "pre", "test/acc")]:
        assert found[key]["ci_low"] == found[key]["ci_high"] == found[key]["p_value"] == "", key
    assert float(found[("arch.block_order", "post", "pre", "14", "test/acc")]["diff_mean"]) == pytest.approx(-0.02)
    r = found[("arch.block_order", "post", "pre", "8", "step_time/median_ms")]
    assert float(r["diff_mean"]) == pytest.approx(-0.6) and float(r["ci_high"]) < 0


def test_summary_md_tables_say_which_differences_exclude_zero(seeded: Path) -> None:
    build_report(seeded)
    text = (seeded / "summary.md").read_text()
    assert text.index("| job |") < text.index("## Groups") < text.index("## Comparisons")
    assert "Only completed jobs count: 3 left out (1 diverged, 2 failed)" in text
    assert "| arch.depth | arch.block_order | n | test acc % | best val acc % | median step ms | images/s | left out |" in text
    assert "| 8 | post | 3 | 82.00 ± 4.97 | 83.00 ± 4.97 | 5.10 ± 0.25 |" in text
    assert "| 14 | pre | 1 | 88.00 | 90.00 | 9.00 | 356 | 1 diverged, 1 failed |" in text
    # The one accuracy difference whose interval excludes zero, as a sentence (best val at depth 8).
    assert ("- arch.block_order: post \u2212 pre = \u22126.00 points of best val acc at arch.depth=8 "
            "(95% CI \u22128.48 to \u22123.52, paired over 3 seeds, p = 0.0091): "
            "the interval excludes zero (pre higher).") in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| arch.")]
    assert ("| arch.block_order | post \u2212 pre | arch.depth=8 | test acc | paired over 3 seeds | \u22122.00 | "
            "\u22124.48 to +0.48 | 0.074 | the interval includes zero |") in rows
    assert any("| arch.depth=14 | test acc | Welch, 2 and 1 jobs | \u22122.00 |  |  | no interval" in r for r in rows)
    assert "8 comparisons, 1 excluding zero, 4 without an interval" in text
    assert "step_time" not in text.split("## Comparisons")[1].split("| key |")[1]  # speed: in the CSV only


def test_sweep_without_seed_axis_has_single_values(tmp_path: Path) -> None:
    """No seed= axis (a recipe's seed axis set to one seed on the command line is none): groups.csv
    holds one job per configuration (no intervals), summary.md says so."""
    sweep = tmp_path / "plain"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {
        "overrides": {"task": ["arch=resnet20,resnet56", "arch.block_order=post,pre", "seed=7", *COMMON]},
        "sweeper": {"params": {"seed": "1,2,3"}}}}))
    for num, (arch, order, test) in enumerate([("resnet20", "post", 0.80), ("resnet20", "pre", 0.82),
                                               ("resnet56", "post", 0.85), ("resnet56", "pre", 0.86)]):
        make_job(sweep, f"{num}-{arch}-{order}", num, [f"arch={arch}", f"arch.block_order={order}", "seed=7"],
                 {"name": arch, "block_order": order}, {"test/acc": test, "val/acc_best": test})
    report = build_report(sweep)
    groups = read_csv(sweep / "groups.csv")
    assert [(g["arch"], g["arch.block_order"], g["n"], g["test/acc_mean"], g["test/acc_ci_low"]) for g in groups] == [
        ("resnet20", "post", "1", "0.8", ""), ("resnet20", "pre", "1", "0.82", ""),
        ("resnet56", "post", "1", "0.85", ""), ("resnet56", "pre", "1", "0.86", "")]
    pairs = read_csv(sweep / "comparisons.csv")
    pre_post = next(p for p in pairs if p["key"] == "arch.block_order" and p["arch"] == "resnet56"
                    and p["metric"] == "test/acc")
    assert float(pre_post["diff_mean"]) == pytest.approx(-0.01) and pre_post["ci_low"] == pre_post["p_value"] == ""
    text = (sweep / "summary.md").read_text()
    assert "No `seed=` axis: every configuration ran once" in text and "## Comparisons" not in text
    # arch sets the depth: one line per block order, single values without bars.
    assert depth_keys(report.groups, report.design) == ["arch"]
    series = depth_series(report.rows, report.groups, report.design, "test_acc")
    assert series.legend == "arch.block_order" and list(series.lines) == ["post", "pre"]
    assert [(d, e.mean, e.half_width) for d, e in series.lines["pre"]] == [(20, 0.82, None), (56, 0.86, None)]


# ---------------------------------------------------------------------------- plots and CLI
def test_plots_draw_means_with_intervals_and_bands(seeded: Path) -> None:
    report = build_report(seeded)
    for name in ("accuracy_vs_depth.png", "step_time_vs_depth.png", "time_to_accuracy.png"):
        assert (seeded / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and seeded / name in report.files
    assert depth_keys(report.groups, report.design) == ["arch.depth"]
    series = depth_series(report.rows, report.groups, report.design, "test_acc")
    assert series.legend == "arch.block_order" and list(series.lines) == ["post", "pre"]
    (d8, post8), (d14, post14) = series.lines["post"]
    assert (d8, post8.n, post8.mean, d14, post14.n) == (8, 3, pytest.approx(0.82), 14, 2)
    assert post8.half_width == pytest.approx(T_TABLE[2] * 0.02 / SQRT3)  # the bar: 95% interval
    assert series.lines["pre"][1][1].half_width is None  # one job at 14: no bar
    curves = {c.label: c for c in time_curves(report.groups, report.design)}
    assert list(curves) == ["8, post", "8, pre", "14, post", "14, pre"]
    post8c = curves["8, post"]
    assert (post8c.n, post8c.colour_key, post8c.style_key) == (3, "post", "8")  # colour: order, line: depth
    assert post8c.times == pytest.approx([12.0, 22.0]) and post8c.mean == pytest.approx([0.73, 0.83])
    assert (post8c.low, post8c.high) == (pytest.approx([0.71, 0.81]), pytest.approx([0.75, 0.85]))
    assert curves["14, pre"].n == 1 and curves["14, pre"].low == curves["14, pre"].mean


def test_cli_rebuilds_the_statistics(seeded: Path, tmp_path: Path) -> None:
    for name in ("groups.csv", "comparisons.csv"):
        assert not (seeded / name).exists()
    proc = run_in_process("resnet_exp.report", str(seeded), "--no-plots", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert "## Groups" in proc.stdout and "excludes zero (pre higher)" in proc.stdout
    assert str(seeded / "groups.csv") in proc.stdout and str(seeded / "comparisons.csv") in proc.stdout


# ---------------------------------------------------------------------------- wandb group
@pytest.mark.parametrize(("task", "job", "group"), [
    (["arch.block_order=post,pre", "seed=1,2"], ["arch.block_order=pre", "seed=2"], "app-sw-pre"),
    (["arch.depth=8,14", "arch.block_order=post,pre", "seed=1,2"],
     ["arch.depth=14", "arch.block_order=pre", "seed=1"], "app-sw-14-pre"),
    (["seed=1,2,3"], ["seed=3"], "app-sw"),  # only seeds: the whole sweep is one configuration
    (["arch.block_order=post,pre"], ["arch.block_order=pre"], "app-sw"),  # no seeds: one group per sweep
])
def test_jobs_that_differ_only_in_seed_share_a_wandb_group(
        compose_config, tmp_path: Path, task: list[str], job: list[str], group: str) -> None:
    sweep = tmp_path / "sw"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": [*task, "data=synthetic"]}}}))
    cfg = compose_config("logger=wandb", "hydra.mode=MULTIRUN", f"hydra.sweep.dir={sweep}", *job, "data=synthetic")
    HydraConfig.instance().set_config(cfg)
    assert cfg.logger.wandb.group == group
    assert cfg.logger.wandb.tags[-1] == "sweep=app-sw"  # the sweep stays findable by its tag
    single = compose_config("logger=wandb", *job)
    HydraConfig.instance().set_config(single)
    assert single.logger.wandb.group is None and single.logger.wandb.tags[-1] is None  # dropped by the logger


@pytest.mark.parametrize(("typed", "group"), [("${seed_group:}", "run-seeded"), ("my-study", "my-study")])
def test_sweep_table_goes_to_the_sweep_group_with_the_sweep_tag(
        seeded: Path, monkeypatch: pytest.MonkeyPatch, typed: str, group: str) -> None:
    """With wandb online the sweep's table run joins the sweep, not one configuration's group."""
    from omegaconf import OmegaConf

    from resnet_exp.app import hydra_callbacks

    logged: dict[str, Any] = {}
    monkeypatch.setattr(hydra_callbacks, "log_wandb_table", lambda report, project, entity, group, tags: (
        logged.update(group=group, tags=tags), "url")[1])
    config = OmegaConf.create({"task_name": "train", "logger": {"wandb": {"project": "p", "group": typed}},
                               "hydra": {"job": {"name": "run"}}})
    hydra_callbacks.SweepReport._log_wandb_table(config, build_report(seeded, plots=False))
    assert logged == {"group": group, "tags": ["sweep=run-seeded"]}
