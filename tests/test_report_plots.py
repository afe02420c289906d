"""What the sweep plots say, read from the figures themselves: legend labels are the swept values
(nothing every job shares), a single depth is drawn as labelled categories, a single run needs no
legend, and every line of time_to_accuracy.png looks different from the others."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from resnet_exp.report import plots
from resnet_exp.report.tables import build_report
from tests.test_report import COMMON, make_job, sweep  # noqa: F401  (fixture: a hand-made sweep folder)


@pytest.fixture()
def figures(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """{png name: the matplotlib Figure written to it} for the report built in the test."""
    drawn: dict[str, Any] = {}
    save = plots._save

    def keep(fig: Any, path: Path) -> None:
        drawn[path.name] = fig
        save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return drawn


def legends(fig: Any) -> list[tuple[str, list[str]]]:
    """(title, labels) of each panel's legend."""
    found = []
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is not None:
            found.append((legend.get_title().get_text(), [t.get_text() for t in legend.get_texts()]))
    return found


def test_legend_labels_are_the_swept_values(sweep: Path, figures: dict[str, Any]) -> None:  # noqa: F811
    build_report(sweep)
    # arch sets the depth (the x axis); the lines are told apart by the other swept key.
    assert legends(figures["accuracy_vs_depth.png"]) == [("arch.block_order", ["post", "pre"])] * 2
    assert legends(figures["step_time_vs_depth.png"]) == [("arch.block_order", ["post", "pre"])]
    (title, labels), = legends(figures["time_to_accuracy.png"])
    assert title == "arch, arch.block_order"
    assert labels == ["resnet20, post", "resnet20, pre", "resnet56, post"]  # the jobs with a time_to_accuracy
    shared = " ".join(COMMON)
    assert not any(value in shared for label in labels for value in label.split(", "))


def test_time_to_accuracy_lines_look_different(sweep: Path, figures: dict[str, Any]) -> None:  # noqa: F811
    build_report(sweep)
    lines = figures["time_to_accuracy.png"].axes[0].get_lines()
    looks = [(line.get_color(), line.get_linestyle(), line.get_marker()) for line in lines]
    assert len(set(looks)) == len(looks) == 3


def one_depth_sweep(root: Path, jobs: list[tuple[str, int]]) -> Path:
    """Jobs of resnet20 (block order, seed), all completed, swept over block order and seed."""
    folder = root / "sweep"
    folder.mkdir()
    orders = ",".join(dict.fromkeys(order for order, _ in jobs))
    seeds = ",".join(str(s) for s in dict.fromkeys(seed for _, seed in jobs))
    task = [*([f"arch.block_order={orders}"] if "," in orders else []), *([f"seed={seeds}"] if "," in seeds else [])]
    (folder / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": ["arch=resnet20", *task]},
                                                                   "sweeper": {"params": None}}}))
    for num, (order, seed) in enumerate(jobs):
        overrides = [*([f"arch.block_order={order}"] if "," in orders else []), *([f"seed={seed}"] if "," in seeds else [])]
        job = make_job(folder, f"{num}-{order}-{seed}", num, ["arch=resnet20", *overrides],
                       {"name": "resnet20", "block_order": order},
                       {"val/acc_best": 0.5 + 0.01 * num, "test/acc": 0.4 + 0.01 * num, "seed": seed,
                        "time_to_accuracy": [{"epoch": 0, "step": 5, "train_time_s": 1.0, "val/acc": 0.3},
                                             {"epoch": 1, "step": 10, "train_time_s": 2.0, "val/acc": 0.5}]})
        results = json.loads((job / "results.json").read_text())
        (job / "results.json").write_text(json.dumps({**results, "depth": 20, "block_order": order}))
    return folder


def test_one_depth_is_drawn_as_labelled_categories(tmp_path: Path, figures: dict[str, Any]) -> None:
    build_report(one_depth_sweep(tmp_path, [(o, s) for o in ("post", "pre") for s in (1, 2)]))
    fig = figures["accuracy_vs_depth.png"]
    assert fig.texts[0].get_text().startswith("Accuracy at depth 20")
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["post", "pre"]
        assert ax.get_xlabel() == "arch.block_order" and ax.get_legend() is None
    (title, labels), = legends(figures["time_to_accuracy.png"])
    assert (title, labels) == ("arch.block_order", ["post (n=2)", "pre (n=2)"])


def test_a_single_run_has_no_legend_to_read(tmp_path: Path, figures: dict[str, Any]) -> None:
    build_report(one_depth_sweep(tmp_path, [("post", 1)]))
    assert legends(figures["time_to_accuracy.png"]) == []
    ax = figures["accuracy_vs_depth.png"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["post"] and ax.get_xlabel() == "block order"
