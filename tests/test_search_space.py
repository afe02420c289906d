"""A search's space: Hydra's sweep syntax as Optuna distributions, a trial as job overrides, the
checks made before a search starts, job names with short floats, and the pieces the sweeper
relies on (consecutive trial numbers, storage URLs, pruners, per-trial sampler seeds)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from resnet_exp.config.resolvers import short_value
from resnet_exp.errors import UserError
from resnet_exp.search.space import probe_jobs, search_space
from resnet_exp.search.study import absolute_url, make_pruner, make_sampler, shown_url
from resnet_exp.search.sweeper import consecutive


@pytest.mark.parametrize(("override", "expected"), [
    ("optimizer.lr=interval(0.001, 0.1)", FloatDistribution(0.001, 0.1)),
    ("optimizer.lr=tag(log, interval(1e-4, 1.0))", FloatDistribution(1e-4, 1.0, log=True)),
    ("arch.block_order=choice(post, pre)", CategoricalDistribution(["post", "pre"])),
    ("arch.block_order=post,pre", CategoricalDistribution(["post", "pre"])),
    ("trainer.max_epochs=choice(4, 8)", CategoricalDistribution([4, 8])),
    ("data.batch_size=range(32, 257, 32)", IntDistribution(32, 256, step=32)),  # Hydra's stop is excluded
    ("arch.depth=tag(log, range(8, 65))", IntDistribution(8, 64, log=True)),
    ("module.label_smoothing=range(0.0, 0.3, 0.1)", FloatDistribution(0.0, 0.2, step=0.1)),
    ("arch.depth=shuffle(range(20, 57, 18))", CategoricalDistribution([20, 38, 56])),
])
def test_sweep_syntax_maps_to_the_optuna_distribution(override: str, expected) -> None:
    space = search_space({}, [override])
    ((key, dist),) = space.distributions.items()
    assert key == override.split("=")[0]
    if isinstance(expected, CategoricalDistribution) and "shuffle" in override:
        assert sorted(dist.choices) == sorted(expected.choices)
    else:
        assert dist == expected


def test_config_params_and_command_line_make_one_space() -> None:
    params = {"optimizer.lr": "tag(log, interval(1e-4, 1.0))", "arch.block_order": "choice(post, pre)"}
    space = search_space(params, ["hparams_search=lr_wd", "arch.block_order=post,pre,relu_only_pre",
                                  "+trainer.gradient_clip_val=1.0", "trainer.max_epochs=2"])
    assert space.fixed == ["hparams_search=lr_wd", "+trainer.gradient_clip_val=1.0", "trainer.max_epochs=2"]
    assert space.distributions["arch.block_order"].choices == ("post", "pre", "relu_only_pre")  # typed wins
    overrides = space.overrides({"optimizer.lr": 0.08923418089348906, "arch.block_order": "pre"})
    assert overrides[-2:] == ["optimizer.lr=0.08923418089348906", "arch.block_order=pre"]  # exact values


def test_probe_jobs_try_every_choice_and_both_ends_one_key_at_a_time() -> None:
    space = search_space({"optimizer.lr": "tag(log, interval(1e-4, 1.0))", "arch.block_order": "post,pre"},
                         ["data=synthetic"])
    assert probe_jobs(space) == [
        ["data=synthetic", "optimizer.lr=0.0001", "arch.block_order=post"],
        ["data=synthetic", "optimizer.lr=1.0", "arch.block_order=post"],
        ["data=synthetic", "optimizer.lr=0.0001", "arch.block_order=pre"],
    ]


@pytest.mark.parametrize(("override", "message"), [
    ("optimizer.lr=interval(0.1, 0.001)", "optimizer.lr=interval(0.1, 0.001): the low end is above the high end"),
    ("optimizer.lr=tag(log, interval(0, 0.1))", "optimizer.lr=tag(log, interval(0, 0.1)): a log scale needs a low"),
    ("data.batch_size=range(64, 32)", "data.batch_size=range(64, 32): the range is empty"),
    ("arch.depth=glob(*)", "arch.depth=glob(*): glob() cannot be searched"),
])
def test_a_search_space_optuna_cannot_take_is_one_line_naming_it(override: str, message: str) -> None:
    with pytest.raises(UserError) as caught:
        search_space({}, [override])
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_job_names_keep_three_significant_digits_of_floats() -> None:
    assert [short_value(v) for v in ("0.08923418089348906", "2.6253331201428122e-06", "0.1", "8", "pre")] == \
        ["0.0892", "2.63e-06", "0.1", "8", "pre"]


def test_trial_numbers_are_launched_in_runs_of_consecutive_numbers() -> None:
    assert consecutive([3, 4, 6, 7, 9]) == [[3, 4], [6, 7], [9]]


def test_storage_urls(tmp_path: Path) -> None:
    assert absolute_url("sqlite:///outputs/s.db", tmp_path) == f"sqlite:///{tmp_path}/outputs/s.db"
    assert absolute_url("sqlite:////abs/s.db", tmp_path) == "sqlite:////abs/s.db"
    assert absolute_url("postgresql://me@db/optuna", tmp_path) == "postgresql://me@db/optuna"
    assert "secret" not in shown_url("postgresql://me:secret@db/optuna")


def test_pruners_by_name_or_target() -> None:
    assert isinstance(make_pruner("median"), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner("hyperband"), optuna.pruners.HyperbandPruner)
    assert isinstance(make_pruner("none"), optuna.pruners.NopPruner)
    assert isinstance(make_pruner({"_target_": "optuna.pruners.ThresholdPruner", "lower": 0.5}),
                      optuna.pruners.ThresholdPruner)
    with pytest.raises(UserError, match="hydra.sweeper.pruner=medain: no such pruner"):
        make_pruner("medain")


def test_each_trial_number_draws_from_its_own_seed() -> None:
    """A rerun against the same study starts at a higher trial number, so it proposes new points."""
    spec = {"_target_": "optuna.samplers.TPESampler", "seed": 42}

    def first_point(offset: int) -> float:
        study = optuna.create_study(sampler=make_sampler(spec, offset))
        return study.ask().suggest_float("lr", 1e-4, 1.0, log=True)

    assert first_point(0) == first_point(0)
    assert first_point(0) != first_point(1)


def test_a_job_reaches_its_trial_through_the_storage(tmp_path: Path) -> None:
    """The job side of a trial (optuna 5.1): open trial 1 of a study by name and number, report to
    it, ask its pruner, mark it; the sweeper's process sees all of it in the database."""
    from resnet_exp.search.pruning import TrialLink

    url = f"sqlite:///{tmp_path}/study.db"
    study = optuna.create_study(storage=url, study_name="s", direction="maximize")
    study.ask(), study.ask()
    trial = TrialLink(url, "s", 1, pruner={"_target_": "optuna.pruners.ThresholdPruner", "lower": 0.9}).open()
    assert optuna.__version__.startswith("5.") and trial.number == 1
    trial.report(0.5, step=0)
    assert trial.should_prune()  # 0.5 is below the pruner's lower bound
    trial.set_user_attr("pruned_at_epoch", 1)
    seen = study.trials[1]
    assert seen.intermediate_values == {0: 0.5} and seen.user_attrs == {"pruned_at_epoch": 1}


def test_processes_racing_to_create_a_new_database_all_open_it(tmp_path: Path, monkeypatch) -> None:
    """Two searches started together on a new sqlite file: the one that loses the race to write the
    schema version (IntegrityError) opens the database on its next try."""
    import sqlalchemy.exc

    from resnet_exp.search.study import make_storage

    real, calls = optuna.storages.RDBStorage, []

    def racing(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 1:
            real(*args, **kwargs)  # the other process wins ...
            raise sqlalchemy.exc.IntegrityError("INSERT INTO alembic_version", {}, Exception("UNIQUE"))
        return real(*args, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    storage = make_storage(f"sqlite:///{tmp_path}/new/study.db")
    monkeypatch.undo()
    assert len(calls) == 2 and isinstance(storage, real) and optuna.create_study(storage=storage).trials == []
