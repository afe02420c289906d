"""Bad input to `python -m resnet_exp.run`: one line naming the key, exit code 2, no run folder.

Every case runs in-process through the entry point's own error path (`run_hydra_app`: the same
code that prints the line and exits); a few also run as real processes, where the exit code and
stderr are what the shell sees.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import TINY_RUN, TINY_TRAINING, explain, run_train, train_in_process

# (override, words the one-line message must contain)
BAD_INPUTS = [
    ("arch=resnet99", ["arch=resnet99", "resnet18", "resnet50"]),
    ("data=imagenet", ["data=imagenet", "cifar10", "fashion_mnist"]),
    ("trainer.foo=1", ["trainer.foo", "unknown key", "max_epochs"]),
    ("arch.blok_order=pre", ["arch.blok_order", "unknown key", "block_order"]),
    ("data.batch_size=abc", ["data.batch_size", "abc"]),
    ("data.batch_size=0", ["data.batch_size=0", "> 0"]),
    ("optimizer.lr=-0.1", ["optimizer.lr=-0.1", "> 0"]),
    ("optimizer=rmsprop", ["optimizer=rmsprop", "sgd", "adamw"]),
    ("scheduler=step", ["scheduler=step", "cosine", "multistep", "none"]),
    ("arch.block_order=sideways", ["arch.block_order", "sideways", "pre"]),
    ("logger.wandb.mode=sometimes", ["logger.wandb.mode=sometimes", "offline", "disabled"]),
    ("experiment=resnet_v2_timing", ["experiment=resnet_v2_timing", "no such option", "cifar_depth_study"]),
]


def assert_one_line_error(proc, words: list[str]) -> None:
    assert proc.returncode == 2, explain(proc)
    assert "Traceback" not in proc.stderr, explain(proc)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), explain(proc)
    for word in words:
        assert word in lines[0], (word, lines[0])


# One of each kind, also as real processes: Hydra's missing option, a schema range check.
IN_A_PROCESS = ["arch=resnet99", "optimizer.lr=-0.1"]
RUNNERS = {"in_process": train_in_process, "subprocess": run_train}
CASES = [pytest.param(override, words, "in_process", id=override) for override, words in BAD_INPUTS] + [
    pytest.param(override, words, "subprocess", id=f"{override}-subprocess")
    for override, words in BAD_INPUTS if override in IN_A_PROCESS]


@pytest.mark.parametrize("override,words,runner", CASES)
def test_bad_override_fails_with_one_line(override: str, words: list[str], runner: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = RUNNERS[runner](*TINY_RUN, override, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert_one_line_error(proc, words)
    assert not run_dir.exists(), sorted(p.name for p in run_dir.iterdir())


@pytest.mark.parametrize("runner", RUNNERS)
def test_missing_data_names_where_it_looked_and_the_remedies(runner: str, tmp_path: Path) -> None:
    """A data error raised while building the parts (after Hydra made the run folder)."""
    run_dir, data_dir = tmp_path / "run", tmp_path / "empty"
    data_dir.mkdir()
    proc = RUNNERS[runner]("data=cifar10", *TINY_TRAINING, f"data.data_dir={data_dir}", "data.download=false",
                           f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert_one_line_error(proc, [str(data_dir), "cifar-10"])
    assert not run_dir.exists()
    assert list(data_dir.iterdir()) == []


def test_a_bug_keeps_its_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only user errors are shortened: an error inside the code is not a one-line exit 2."""
    import resnet_exp.pipeline

    def broken(cfg, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(resnet_exp.pipeline, "build_parts", broken)
    proc = train_in_process(*TINY_RUN, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 1, explain(proc)
    assert "Traceback" in proc.stderr and "ZeroDivisionError: a bug" in proc.stderr


def test_a_sweep_with_a_missing_dataset_fails_once_before_any_job(tmp_path: Path) -> None:
    """Each dataset of a sweep is looked for once, before the first job: one line, no job run."""
    sweep, data_dir = tmp_path / "sweep", tmp_path / "empty"
    data_dir.mkdir()
    proc = train_in_process("-m", "data=cifar10", *TINY_TRAINING, f"data.data_dir={data_dir}", "data.download=false",
                            "seed=1,2,3", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert_one_line_error(proc, [str(data_dir), "cifar-10", "Remedies"])
    assert not sweep.exists() and list(data_dir.iterdir()) == []


def test_sweep_and_cfg_together_are_one_line(tmp_path: Path) -> None:
    proc = train_in_process("-m", *TINY_RUN, "seed=1,2", "--cfg", "job", cwd=tmp_path)
    assert_one_line_error(proc, ["-m and --cfg", "drop -m"])
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("mode", ["run", "sweep"])
def test_debug_shows_the_traceback_of_errors_found_before_the_first_job(mode: str, tmp_path: Path) -> None:
    args = ["-m", "optimizer.lr=0.1,-0.1"] if mode == "sweep" else ["optimizer.lr=-0.1"]
    proc = train_in_process(*args, *TINY_RUN, cwd=tmp_path, RESNET_EXP_DEBUG="1")
    assert proc.returncode == 2, explain(proc)
    assert "Traceback" in proc.stderr and "ConfigError" in proc.stderr, explain(proc)
    assert proc.stderr.strip().splitlines()[-1].startswith("error: optimizer.lr=-0.1: must be > 0")
