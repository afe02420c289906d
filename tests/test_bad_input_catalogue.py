"""A catalogue of bad input and faults, across every entry point (run, eval, bench, report, models).

Each case: a non-zero exit, no traceback, one `error:` line naming what the user typed and what
is allowed, and no run folder left behind. Most run in this process (Hydra cleared between
calls); a few go through a real subprocess, where exit codes and pipes are the point.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.helpers.cli import TINY_RUN, cli_env, isolated, run_cli

# Placeholders filled per test: {tmp} the test's folder; files made by `bad_files`.
RUN_CASES = [
    (["arch=resnet99"], ["arch=resnet99", "resnet18"]),
    (["data=imagenet"], ["data=imagenet", "cifar10"]),
    (["trainer.foo=1"], ["trainer.foo", "unknown key"]),
    (["arch.blok_order=pre"], ["arch.blok_order", "block_order"]),
    (["data.batch_size=abc"], ["data.batch_size", "abc"]),
    (["data.batch_size=0"], ["data.batch_size=0", "> 0"]),
    (["data.batch_size=-3"], ["data.batch_size=-3", "> 0"]),
    (["optimizer.lr=-0.1"], ["optimizer.lr=-0.1", "> 0"]),
    (["optimizer.lr=0"], ["optimizer.lr=0", "> 0"]),
    (["optimizer.lr=abc"], ["optimizer.lr", "abc"]),
    (["optimizer=rmsprop"], ["optimizer=rmsprop", "adamw"]),
    (["scheduler=step"], ["scheduler=step", "cosine"]),
    (["arch.block_order=sideways"], ["arch.block_order", "sideways"]),
    (["logger.wandb.mode=sometimes"], ["logger.wandb.mode=sometimes", "offline"]),
    (["experiment=nope"], ["experiment=nope", "no such option"]),
    (["seed=abc"], ["seed=abc", "whole number"]),
    (["seed=99999999999"], ["seed=99999999999", "4294967295"]),
    (["seed=-1"], ["seed=-1", "whole number"]),
    (["seed=1.5"], ["seed=1.5", "whole number"]),
    (["seed=true"], ["seed=True", "whole number"]),
    (["optimizer.nesterov=true", "optimizer.momentum=0"], ["optimizer.nesterov", "momentum > 0"]),
    (["optimizer.nesterov=true", "optimizer.dampening=0.5"], ["optimizer.nesterov", "dampening = 0"]),
    (["optimizer.momentum=1.5"], ["optimizer.momentum=1.5", "[0, 1)"]),
    (["optimizer.weight_decay=-1"], ["optimizer.weight_decay=-1", ">= 0"]),
    (["trainer.max_epochs=0"], ["trainer.max_epochs=0", ">= 1", "-1 for no limit"]),
    (["trainer.max_epochs=-2"], ["trainer.max_epochs=-2", ">= 1", "-1 for no limit"]),
    (["trainer.max_epochs=-1"], ["trainer.max_epochs=-1", "no set length", "trainer.max_steps"]),
    (["trainer.max_epochs=-2", "scheduler=none"], ["trainer.max_epochs=-2", ">= 1", "-1 for no limit"]),
    (["trainer.max_epochs=abc"], ["trainer.max_epochs", "abc"]),
    (["trainer.gradient_clip_val=-1"], ["trainer.gradient_clip_val=-1", ">= 0"]),
    (["trainer.accumulate_grad_batches=0"], ["trainer.accumulate_grad_batches=0", "> 0"]),
    (["trainer=nope"], ["trainer=nope", "cpu"]),
    (["module.label_smoothing=1.5"], ["module.label_smoothing=1.5", "[0, 1)"]),
    (["optimizer=adam", "optimizer.betas=[0.9,1.5]"], ["optimizer.betas", "[0, 1)"]),
    (["optimizer=adam", "optimizer.eps=0"], ["optimizer.eps=0", "> 0"]),
    (["scheduler=multistep", "scheduler.lr_scheduler.milestones=[5,2]"], ["milestones", "increasing"]),
    (["scheduler=multistep", "scheduler.lr_scheduler.gamma=2"], ["gamma=2", "(0, 1]"]),
    (["scheduler.frequency=0"], ["scheduler.frequency=0", "> 0"]),
    (["data.image_size=4"], ["image_size", "8 and 512"]),
    (["arch=custom", "data.image_size=8"], ["data.image_size=8", "stem", ">= 16"]),
    (["hydra.run.dir={tmp}/a_file/run"], ["hydra.run.dir=", "a_file", "is a file"]),
    (["hydra.run.dir=/proc/run"], ["hydra.run.dir=/proc/run", "cannot create"]),
    (["-m", "hydra.sweep.dir=/proc/sweep"], ["hydra.sweep.dir=/proc/sweep", "cannot create"]),
    (["-m", "hydra.sweep.dir={tmp}/a_file"], ["hydra.sweep.dir=", "is a file"]),
    (["resume={tmp}"], ["resume=", "not a run folder"]),
    (["resume={tmp}/missing"], ["resume=", "not a run folder"]),
    (["ckpt_path={tmp}/missing.ckpt"], ["ckpt_path=", "missing.ckpt", "no such file"]),
    (["ckpt_path={tmp}/notes.txt"], ["notes.txt", "not a readable checkpoint"]),
    (["ckpt_path={tmp}/truncated.ckpt"], ["truncated.ckpt", "not a readable checkpoint"]),
    (["ckpt_path={tmp}/empty.ckpt"], ["empty.ckpt", "not a readable checkpoint"]),
    (["ckpt_path={tmp}/tensor.ckpt"], ["tensor.ckpt", "not a readable checkpoint"]),
    (["ckpt_path={tmp}/fake_run/checkpoints/last.ckpt", "hydra.run.dir={tmp}/elsewhere"],
     ["last.ckpt", "not a readable checkpoint"]),
    (["resume={tmp}/fake_run", "hydra.run.dir={tmp}/elsewhere"], ["hydra.run.dir=", "own folder"]),
    (["resume={tmp}/fake_run", "-m"], ["resume=", "-m"]),
    # Numbers that are no amount, names that are no folder, paths Hydra must read quoted.
    (["optimizer.lr=inf"], ["optimizer.lr=inf", "finite"]),
    (["optimizer.lr=nan"], ["optimizer.lr=nan", "> 0"]),
    (["optimizer.weight_decay=inf"], ["optimizer.weight_decay=inf", "finite"]),
    (["module.label_smoothing=nan"], ["module.label_smoothing=nan", "[0, 1)"]),
    (["task_name=../../x"], ["task_name=../../x", "one folder name"]),
    (["task_name=a/b"], ["task_name=a/b", "one folder name"]),
    (["task_name=.."], ["task_name=..", "one folder name"]),
    (["task_name=my run ü"], ["task_name=my run ü", "quotes", "task_name='my run ü'"]),
    (["data.data_dir=a b,c"], ["data.data_dir=a b,c", "quote it", "add -m to sweep"]),
    (["+arch.foo=1"], ["arch.foo=1", "unknown arch option"]),
    (["~arch"], ["arch", "pick one with arch=NAME"]),
    (["experiment=quickstart", "optimizer=adam"], ["experiment=quickstart", "optimizer.momentum", "optimizer"]),
    # Output folders that cannot be made, or that hold a run or a sweep already.
    (["paths.log_dir=/proc/x"], ["paths.log_dir=/proc/x", "cannot create the output folder"]),
    (["paths.log_dir={tmp}/a_file"], ["paths.log_dir=", "a_file", "is a file"]),
    (["task_name=t", "paths.log_dir=/proc/y"], ["paths.log_dir=/proc/y", "cannot create"]),
    (["hydra.run.dir={tmp}/fake_run"], ["hydra.run.dir=", "holds a run already", "resume="]),
    (["-m", "hydra.sweep.dir={tmp}/old_sweep"], ["hydra.sweep.dir=", "holds a sweep already", "-m resume="]),
    # Run folders whose own files no longer make sense.
    (["resume={tmp}/run_bad_yaml"], ["run_bad_yaml/.hydra/overrides.yaml", "cannot read"]),
    (["resume={tmp}/run_empty_overrides"], ["run_empty_overrides/.hydra/overrides.yaml", "damaged"]),
    (["resume={tmp}/run_dict_overrides"], ["run_dict_overrides/.hydra/overrides.yaml", "damaged"]),
    (["resume={tmp}/run_old_key"], ["optimizer.gone", "unknown key", "run's own .hydra/overrides.yaml"]),
]
if not torch.cuda.is_available():
    RUN_CASES += [
        (["trainer.accelerator=gpu"], ["trainer.accelerator=gpu", "no CUDA", "cpu"]),
        (["trainer=gpu"], ["trainer.accelerator=gpu", "no CUDA", "cpu"]),
    ]

EVAL_CASES = [
    ([], ["ckpt_path", "required"]),
    (["ckpt_path={tmp}/missing.ckpt"], ["missing.ckpt", "no such file"]),
    (["ckpt_path={tmp}"], ["ckpt_path=", "no such file"]),
    (["ckpt_path={tmp}/notes.txt"], ["notes.txt", "not a readable checkpoint"]),
    (["ckpt_path={tmp}/truncated.ckpt"], ["truncated.ckpt", "not a readable checkpoint"]),
    (["ckpt_path={tmp}/empty.ckpt"], ["empty.ckpt", "not a readable checkpoint"]),
    (["ckpt_path={tmp}/run_bad_yaml/checkpoints/last.ckpt"], ["overrides.yaml", "cannot read"]),
    (["ckpt_path={tmp}/run_old_key/checkpoints/last.ckpt"], ["optimizer.gone", "run's own .hydra/overrides.yaml"]),
    (["ckpt_path={tmp}/whole.ckpt", "optimizer.lr=inf"], ["optimizer.lr=inf", "finite"]),
    (["ckpt_path={tmp}/whole.ckpt", "paths.log_dir=/proc/x"], ["paths.log_dir=/proc/x", "cannot create"]),
]

BENCH_CASES = [
    (["arch=resnet99"], ["arch=resnet99", "resnet18"]),
    (["bench.batch_size=0"], ["bench.batch_size=0", "> 0"]),
    (["bench.batches=0"], ["bench.batches=0", "> 0"]),
    (["bench.mode=[fly]"], ["bench.mode", "fly"]),
    (["arch=custom", "bench.image_size=8"], ["bench.image_size=8", ">= 16"]),
    (["hydra.run.dir=/proc/bench"], ["hydra.run.dir=/proc/bench", "cannot create"]),
    (["paths.log_dir=/proc/bench"], ["paths.log_dir=/proc/bench", "cannot create"]),
    (["bench.batch_size=100000", "bench.image_size=224"], ["bench.batch_size=100000", "does not fit"]),
]
if not torch.cuda.is_available():
    BENCH_CASES.append((["bench.device=cuda"], ["bench.device=cuda", "cpu"]))


@pytest.fixture
def bad_files(tmp_path: Path) -> Path:
    (tmp_path / "a_file").write_text("not a folder\n")
    (tmp_path / "notes.txt").write_text("this is not a checkpoint\n")
    (tmp_path / "empty.ckpt").write_bytes(b"")
    whole = tmp_path / "whole.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(64, 64)}, "epoch": 0, "global_step": 1}, whole)
    (tmp_path / "truncated.ckpt").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    torch.save(torch.zeros(3), tmp_path / "tensor.ckpt")
    # A run folder whose only checkpoint was cut short by a crash.
    run = tmp_path / "fake_run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- data=synthetic\n")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(whole.read_bytes()[:100])
    # Run folders whose command line record is damaged, or names a key the config no longer has.
    for name, overrides in [("run_bad_yaml", "- data=synthetic\n- [unclosed\n"), ("run_empty_overrides", ""),
                            ("run_dict_overrides", "data: synthetic\n"),
                            ("run_old_key", "- data=synthetic\n- optimizer.gone=1\n")]:
        (tmp_path / name / ".hydra").mkdir(parents=True)
        (tmp_path / name / ".hydra" / "overrides.yaml").write_text(overrides)
        (tmp_path / name / "checkpoints").mkdir()
        (tmp_path / name / "checkpoints" / "last.ckpt").write_bytes(whole.read_bytes())
    (tmp_path / "old_sweep").mkdir()
    (tmp_path / "old_sweep" / "multirun.yaml").write_text("hydra: {}\n")
    return tmp_path


def snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def call_app(module: str, args: list[str], monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`python -m <module> <args>` in this process: (exit code, stderr). Process-wide state the call
    changes (Hydra, the job's log-file handler, environment, cwd) is put back afterwards."""
    import importlib

    entry = importlib.import_module(module)
    env = {k: v for k, v in cli_env(HYDRA_FULL_ERROR="1").items() if k != "RESNET_EXP_DEBUG"}
    with isolated([module, *args], Path.cwd(), env):
        try:
            entry.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, words: list[str]) -> None:
    assert code != 0, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    for word in words:
        assert word in errors[0], (word, errors[0])


def fill(args: list[str], tmp: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)) for a in args]


def case_id(case: tuple[list[str], list[str]]) -> str:
    return " ".join(case[0]).replace("{tmp}", "T") or "(none)"


@pytest.mark.parametrize("args,words", RUN_CASES, ids=[case_id(c) for c in RUN_CASES])
def test_run(args: list[str], words: list[str], bad_files: Path, monkeypatch, capsys) -> None:
    before = snapshot(bad_files)
    monkeypatch.chdir(bad_files)
    decides_folder = ("hydra.", "-m", "resume=", "paths.log_dir=", "task_name=")
    run_dir = [] if any(a.startswith(decides_folder) for a in args) else [f"hydra.run.dir={bad_files}/run"]
    groups = {a.split("=")[0] for a in args if "." not in a.split("=")[0]}
    tiny = [a for a in TINY_RUN if a.split(".")[0] not in groups]  # trainer=gpu: no trainer.*=cpu
    flags = [a for a in args if a.startswith("-") and "=" not in a]  # -m goes first, as typed
    code, err = call_app("resnet_exp.run", [*flags, *tiny, *fill([a for a in args if a not in flags], bad_files),
                                            *run_dir], monkeypatch, capsys)
    assert_one_line_error(code, err, [w.replace("{tmp}", str(bad_files)) for w in words])
    assert snapshot(bad_files) == before  # no run folder, no outputs/, nothing half-written


@pytest.mark.parametrize("args,words", EVAL_CASES, ids=[case_id(c) for c in EVAL_CASES])
def test_eval(args: list[str], words: list[str], bad_files: Path, monkeypatch, capsys) -> None:
    before = snapshot(bad_files)
    monkeypatch.chdir(bad_files)
    code, err = call_app("resnet_exp.eval", fill(args, bad_files), monkeypatch, capsys)
    assert_one_line_error(code, err, words)
    assert snapshot(bad_files) == before


@pytest.mark.parametrize("args,words", BENCH_CASES, ids=[case_id(c) for c in BENCH_CASES])
def test_bench(args: list[str], words: list[str], bad_files: Path, monkeypatch, capsys) -> None:
    before = snapshot(bad_files)
    monkeypatch.chdir(bad_files)
    tiny = ["arch.width=0.125", "bench.batches=1", "bench.burn_in=0", "bench.image_size=32"]
    code, err = call_app("resnet_exp.bench.__main__", [*tiny, *fill(args, bad_files)], monkeypatch, capsys)
    assert_one_line_error(code, err, words)
    assert snapshot(bad_files) == before


# Checkpoints that do not fit the run: (entry point, args, words). Placeholders: {tmp} the test's
# folder, holding `checkpoint_variants` of {run}, a finished tiny run (resnet18 at width 1/8, SGD, cosine).
EVAL_DATA = [a for a in TINY_RUN if not a.startswith(("logger.", "trainer."))]
CHECKPOINT_CASES = [
    ("run", ["ckpt_path={tmp}/run.ckpt", "arch=resnet34", "arch.width=0.125"],
     ["ckpt_path=", "run.ckpt", "does not fit arch=resnet34", "is not in it"]),
    ("run", ["ckpt_path={tmp}/run.ckpt", "arch.blocks=[1,1,1,1]"],
     ["run.ckpt", "does not fit arch=resnet18", "which this net has not"]),
    ("run", ["ckpt_path={tmp}/run.ckpt", "arch.width=0.25"], ["does not fit arch=resnet18", "wider or narrower"]),
    ("run", ["ckpt_path={run}/checkpoints/last.ckpt", "arch=resnet34", "arch.width=0.125"],
     ["last.ckpt", "does not fit arch=resnet34"]),
    ("run", ["ckpt_path={tmp}/plain.ckpt"], ["plain.ckpt", "not a readable checkpoint", "bare model state_dict"]),
    ("run", ["ckpt_path={tmp}/not_tensors.ckpt"], ["not_tensors.ckpt", "is a float, not a tensor"]),
    ("run", ["ckpt_path={tmp}/weights_only.ckpt"], ["weights_only.ckpt", "no training state", "init_weights="]),
    ("run", ["resume={run}", "optimizer=adam"],
     ["optimizer state does not fit optimizer=adam", "another optimizer", "betas", "init_weights="]),
    ("run", ["resume={run}", "optimizer.nesterov=true"], ["optimizer=sgd", "nesterov=False there, True here"]),
    ("run", ["resume={run}", "scheduler=onecycle"],
     ["schedule does not fit scheduler=onecycle", "T_max", "total_steps", "init_weights="]),
    ("run", ["resume={run}", "scheduler=none"], ["scheduler=none", "a schedule there, a constant rate here"]),
    ("run", ["ckpt_path={tmp}/run.ckpt", "scheduler.warmup=linear", "scheduler.warmup_length=1"],
     ["scheduler=cosine", "another scheduler or warm-up"]),
    ("run", ["ckpt_path={tmp}/run.ckpt", "module.decay_norm_and_bias=true"],
     ["2 parameter groups there, 1 here", "module.decay_norm_and_bias"]),
    ("run", ["init_weights={tmp}/notes.txt"], ["notes.txt", "not a readable checkpoint"]),
    ("run", ["init_weights={tmp}/missing.ckpt"], ["init_weights=", "missing.ckpt", "no such file"]),
    ("run", ["init_weights={tmp}/run.ckpt", "arch=resnet34", "arch.width=0.125"],
     ["init_weights=", "does not fit arch=resnet34"]),
    ("run", ["init_weights={tmp}/not_tensors.ckpt"], ["init_weights=", "not a tensor"]),
    ("run", ["init_weights={tmp}/run.ckpt", "resume={run}"], ["init_weights=", "cannot be combined with resume="]),
    ("eval", ["ckpt_path={run}/checkpoints/last.ckpt", "arch=resnet34", "arch.width=0.125"],
     ["last.ckpt", "does not fit arch=resnet34", "is not in it"]),
    ("eval", ["ckpt_path={run}/checkpoints/last.ckpt", "arch.blocks=[1,1,1,1]"], ["which this net has not"]),
    ("eval", ["ckpt_path={run}/checkpoints/last.ckpt", "arch.width=0.25"], ["wider or narrower"]),
    ("eval", ["ckpt_path={tmp}/plain.ckpt"], ["plain.ckpt", "bare model state_dict"]),
    ("eval", ["ckpt_path={tmp}/not_tensors.ckpt", *EVAL_DATA], ["not_tensors.ckpt", "not a tensor"]),
    ("eval", ["ckpt_path={run}/checkpoints/last.ckpt", "init_weights={tmp}/run.ckpt"], ["init_weights", "not for eval"]),
]


def checkpoint_variants(folder: Path, run: Path) -> None:
    """The run's last checkpoint copied out of its folder, and files made from it that are no
    training checkpoint: the bare model state_dict, a non-tensor entry, no training state."""
    last = run / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True)
    shutil.copy(last, folder / "run.ckpt")
    torch.save(saved["state_dict"], folder / "plain.ckpt")
    first = next(iter(saved["state_dict"]))
    torch.save({**saved, "state_dict": {**saved["state_dict"], first: 1.5}}, folder / "not_tensors.ckpt")
    lean = ("optimizer_states", "lr_schedulers", "loops", "callbacks")
    torch.save({k: v for k, v in saved.items() if k not in lean}, folder / "weights_only.ckpt")


@pytest.mark.parametrize("entry,args,words", CHECKPOINT_CASES,
                         ids=[f"{c[0]} {case_id(c[1:])}".replace("{run}", "R") for c in CHECKPOINT_CASES])
def test_checkpoint(entry: str, args: list[str], words: list[str], trained_run: Path, bad_files: Path,
                    monkeypatch, capsys) -> None:
    checkpoint_variants(bad_files, trained_run)
    before = snapshot(bad_files), snapshot(trained_run)
    monkeypatch.chdir(bad_files)
    args = [a.replace("{run}", str(trained_run)) for a in fill(args, bad_files)]
    if entry == "run":
        in_the_run = any(a.startswith(("resume=", f"ckpt_path={trained_run}")) for a in args)
        groups = {a.split("=")[0] for a in args if "." not in a.split("=")[0]}
        tiny = [a for a in TINY_RUN if a.split(".")[0].split("=")[0] not in groups]
        args = [*tiny, *args, *([] if in_the_run else [f"hydra.run.dir={bad_files}/run"])]
    code, err = call_app(f"resnet_exp.{entry}", args, monkeypatch, capsys)
    assert_one_line_error(code, err, words)
    assert (snapshot(bad_files), snapshot(trained_run)) == before  # no folder made, nothing half-written


REPORT_CASES = [
    (["{tmp}/missing"], ["missing"]),
    (["{tmp}/notes.txt"], ["notes.txt"]),
    (["{tmp}/fake_run"], ["fake_run", "curves.png", "metrics.csv"]),  # a run folder that logged nothing
]


@pytest.mark.parametrize("args,words", REPORT_CASES, ids=[case_id(c) for c in REPORT_CASES])
def test_report(args: list[str], words: list[str], bad_files: Path, capsys) -> None:
    from resnet_exp.report.__main__ import main

    before = snapshot(bad_files)
    code = main(fill(args, bad_files))
    assert_one_line_error(code, capsys.readouterr().err, words)
    assert snapshot(bad_files) == before


# Run lengths that train, validate or test nothing, and WANDB_* values wandb would refuse at init:
# (arguments, environment, words). TINY_RUN has 6 training, 2 validation and 2 test batches an
# epoch, and 2 epochs.
WANDB_ON = "logger.wandb.mode=offline"
LENGTH_AND_ENV_CASES = [
    (["trainer.limit_train_batches=0"], {}, ["trainer.limit_train_batches=0", "train nothing"]),
    (["trainer.limit_train_batches=0", "scheduler=none"], {}, ["trainer.limit_train_batches=0", "train nothing"]),
    (["trainer.limit_train_batches=0.0"], {}, ["trainer.limit_train_batches=0.0", "(0.0, 1.0]"]),
    (["trainer.limit_train_batches=-1"], {}, ["trainer.limit_train_batches=-1", "whole number of batches"]),
    (["trainer.limit_train_batches=1.5"], {}, ["trainer.limit_train_batches=1.5", "fraction"]),
    (["trainer.limit_train_batches=abc"], {}, ["trainer.limit_train_batches=abc", "whole number"]),
    (["trainer.limit_train_batches=0.01"], {}, ["trainer.limit_train_batches=0.01", "less than one of the 6",
                                                "trainer.limit_train_batches=0.167"]),
    (["trainer.limit_val_batches=0.01"], {}, ["trainer.limit_val_batches=0.01", "2 validation batches", "0.5"]),
    (["trainer.limit_val_batches=-0.5"], {}, ["trainer.limit_val_batches=-0.5", "0 for no validation"]),
    (["trainer.limit_test_batches=0"], {}, ["trainer.limit_test_batches=0", "test nothing"]),
    (["trainer.limit_test_batches=0.001"], {}, ["trainer.limit_test_batches=0.001", "2 test batches"]),
    (["trainer.val_check_interval=0"], {}, ["trainer.val_check_interval=0", "> 0"]),
    (["trainer.check_val_every_n_epoch=0"], {}, ["trainer.check_val_every_n_epoch=0", "> 0"]),
    (["trainer.max_time=00:00:00:00"], {}, ["trainer.max_time=00:00:00:00", "longer than 0"]),
    (["trainer.max_steps=3", "scheduler.interval=step", "scheduler.warmup=linear", "scheduler.warmup_length=10"],
     {}, ["scheduler.warmup_length=10", "shorter than the run", "3 optimizer steps"]),
    (["scheduler.warmup=linear", "scheduler.warmup_length=5"], {}, ["scheduler.warmup_length=5", "2 epochs"]),
    (["scheduler=multistep", "scheduler.lr_scheduler.milestones=[1,5]"], {}, ["milestones=[1, 5]", "beyond the end"]),
    (["-m", "trainer.limit_train_batches=1,0"], {}, ["trainer.limit_train_batches=0", "train nothing"]),
    ([WANDB_ON], {"WANDB_MODE": "sometimes"}, ["WANDB_MODE=sometimes", "online, offline or disabled"]),
    (["logger.wandb.mode=auto"], {"WANDB_MODE": "off line"}, ["WANDB_MODE=off line", "unset it"]),
    ([WANDB_ON], {"WANDB_CONSOLE": "bogus"}, ["WANDB_CONSOLE=bogus", "'wrap'"]),
    ([WANDB_ON], {"WANDB_SILENT": "maybe"}, ["WANDB_SILENT=maybe", "boolean"]),
    ([WANDB_ON], {"WANDB_RESUME": "yes"}, ["WANDB_RESUME=yes", "'allow'"]),
    ([WANDB_ON], {"WANDB_INIT_TIMEOUT": "soon"}, ["WANDB_INIT_TIMEOUT=soon", "number"]),
]


def length_case_id(case: tuple[list[str], dict[str, str], list[str]]) -> str:
    return " ".join([*(f"{k}={v}" for k, v in case[1].items()), *case[0]])


@pytest.mark.parametrize("args,env,words", LENGTH_AND_ENV_CASES, ids=[length_case_id(c) for c in LENGTH_AND_ENV_CASES])
def test_run_length_and_environment(args: list[str], env: dict[str, str], words: list[str], bad_files: Path,
                                    monkeypatch, capsys) -> None:
    import resnet_exp.run as entry

    before = snapshot(bad_files)
    monkeypatch.chdir(bad_files)
    flags = [a for a in args if a.startswith("-") and "=" not in a]
    folder = [] if flags else [f"hydra.run.dir={bad_files}/run"]
    argv = ["resnet_exp.run", *flags, *TINY_RUN, *[a for a in args if a not in flags], *folder]
    environ = {k: v for k, v in {**cli_env(HYDRA_FULL_ERROR="1"), **env}.items() if k != "RESNET_EXP_DEBUG"}
    with isolated(argv, bad_files, environ):
        with pytest.raises(SystemExit) as exc:
            entry.main()
    assert_one_line_error(exc.value.code, capsys.readouterr().err, words)
    assert snapshot(bad_files) == before


def test_models_pattern_that_matches_nothing(capsys) -> None:
    from resnet_exp.models.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(["resnet9*"])
    assert_one_line_error(exc.value.code, capsys.readouterr().err, ["resnet9*", "resnet18", "resnet56v2"])


@pytest.mark.parametrize("argv", [["x", "--bogus"], ["a", "b"]])
def test_command_line_parsers_refuse_unknown_arguments(argv: list[str], capsys) -> None:
    from resnet_exp.models.__main__ import main as models
    from resnet_exp.report.__main__ import main as report

    for main in (models, report):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert_one_line_error(exc.value.code, capsys.readouterr().err, [argv[-1]])


# A handful through a real process: exit codes, stderr and pipes as a shell sees them.
@pytest.mark.slow
def test_subprocess_seed_and_checkpoint_errors(bad_files: Path) -> None:
    proc = run_cli("resnet_exp.run", *TINY_RUN, "seed=abc", cwd=bad_files)
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "error: seed=abc: must be a whole number in [0, 4294967295]"), proc.stderr
    proc = run_cli("resnet_exp.eval", f"ckpt_path={bad_files}/truncated.ckpt", cwd=bad_files)
    assert proc.returncode == 2 and proc.stderr.startswith(
        f"error: {bad_files}/truncated.ckpt: not a readable checkpoint ("), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (bad_files / "outputs").exists()


@pytest.mark.slow
@pytest.mark.parametrize("module", ["resnet_exp.run", "resnet_exp.eval", "resnet_exp.bench"])
def test_help_into_a_closed_pipe_exits_quietly(module: str, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", module, "--help"], cwd=tmp_path, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # like `| head` that has read enough
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) != 0 or err == ""
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_a_full_disk_mid_run_is_one_line_naming_the_file(bad_files: Path, monkeypatch, capsys) -> None:
    """ENOSPC while a checkpoint is written: one line naming paths.log_dir and the file, exit 2."""
    import errno

    import resnet_exp.callbacks.checkpoint as checkpoint

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(checkpoint, "write_atomic", full)
    monkeypatch.chdir(bad_files)
    code, err = call_app("resnet_exp.run", [*TINY_RUN, f"hydra.run.dir={bad_files}/run"], monkeypatch, capsys)
    assert code == 2
    assert_one_line_error(code, err, ["paths.log_dir", "no space left", f"{bad_files}/run/checkpoints/", ".ckpt",
                                      "resume="])


# The training switches: augmentation policies, random erasing, MixUp/CutMix, TTA, EMA, early
# stopping, wandb checkpoint upload.
TOOLBOX_CASES = [
    (["data.augment=heavy"], ["data.augment", "trivialaugment"]),
    (["data.random_erasing=1.5"], ["data.random_erasing=1.5", "[0, 1]"]),
    (["data.mixup_alpha=-1"], ["data.mixup_alpha=-1", ">= 0"]),
    (["data.cutmix_alpha=inf"], ["data.cutmix_alpha=inf", "finite"]),
    (["module.tta=rotate"], ["module.tta", "flip"]),
    (["callbacks/ema=nope"], ["callbacks/ema=nope", "default"]),
    (["callbacks/ema=default", "callbacks.ema.decay=1"], ["callbacks.ema.decay=1", "(0, 1)"]),
    (["callbacks/ema=default", "callbacks.ema.update_every_n_steps=0"], ["update_every_n_steps=0", ">= 1"]),
    (["callbacks.ema.decay=0.99"], ["callbacks.ema.decay", "off", "callbacks/ema=NAME"]),
    (["callbacks/early_stopping=default", "callbacks.early_stopping.patience=-1"], ["patience=-1", ">= 0"]),
    (["callbacks/early_stopping=default", "callbacks.early_stopping.min_delta=-0.1"], ["min_delta=-0.1", ">= 0"]),
    (["callbacks/early_stopping=default", "trainer.limit_val_batches=0"],
     ["callbacks.early_stopping.monitor=val/acc", "never validates", "trainer.limit_val_batches=0"]),
    (["callbacks.early_stopping.patience=3"], ["callbacks.early_stopping.patience", "callbacks/early_stopping=NAME"]),
    (["logger.wandb.log_model=sometimes"], ["logger.wandb.log_model=sometimes", "false, true", "all"]),
]


@pytest.mark.parametrize("args,words", TOOLBOX_CASES, ids=[case_id(c) for c in TOOLBOX_CASES])
def test_toolbox(args: list[str], words: list[str], bad_files: Path, monkeypatch, capsys) -> None:
    test_run(args, words, bad_files, monkeypatch, capsys)


# Resumed sweeps (`-m resume=<sweep dir>`). Placeholders: {tmp} as above, with `sweep_files`: a sweep
# folder {tmp}/sweep (data=synthetic, arch.block_order=post,pre) and {tmp}/sweep_bad_yaml.
SWEEP_RESUME_CASES = [
    (["-m", "resume={tmp}"], ["resume=", "not a sweep folder", "multirun.yaml", "outputs/<task>/multiruns/"]),
    (["-m", "resume={tmp}/missing"], ["resume=", "not a sweep folder"]),
    (["-m", "resume={tmp}/fake_run"], ["resume=", "not a sweep folder", "without -m"]),
    (["-m", "ckpt_path={tmp}/whole.ckpt"], ["ckpt_path=", "not a sweep", "-m resume=<sweep dir>"]),
    (["-m", "resume={tmp}/old_sweep"], ["old_sweep/multirun.yaml", "damaged", "hydra.overrides.task"]),
    (["-m", "resume={tmp}/sweep_bad_yaml"], ["sweep_bad_yaml/multirun.yaml", "cannot read"]),
    (["-m", "resume={tmp}/sweep", "hydra.sweep.dir={tmp}/elsewhere"], ["hydra.sweep.dir=", "its own folder"]),
    (["-m", "resume={tmp}/sweep", "arch.block_order=pre"],
     ["arch.block_order=pre", "changes the jobs of the sweep", "2 jobs over arch.block_order=post,pre"]),
    (["-m", "resume={tmp}/sweep", "seed=1,2"], ["seed=1,2", "changes the jobs of the sweep"]),
    (["-m", "resume={tmp}/sweep", "arch=resnet20"], ["arch=resnet20", "changes the jobs of the sweep"]),
    (["-m", "resume={tmp}/sweep", "optimizer.lr=-1"], ["optimizer.lr=-1", "> 0"]),
    (["-m", "resume={tmp}/sweep", "init_weights={tmp}/whole.ckpt"], ["init_weights=", "cannot be combined with resume="]),
]


def sweep_files(tmp: Path) -> None:
    """A sweep folder as Hydra leaves it (multirun.yaml; no job has started), and one whose
    multirun.yaml is not YAML."""
    (tmp / "sweep").mkdir()
    saved = {"hydra": {"overrides": {"hydra": ["hydra.mode=MULTIRUN"],
                                     "task": [*TINY_RUN, "arch.block_order=post,pre"]},
                       "sweeper": {"params": None}}}
    (tmp / "sweep" / "multirun.yaml").write_text(yaml.safe_dump(saved))
    (tmp / "sweep_bad_yaml").mkdir()
    (tmp / "sweep_bad_yaml" / "multirun.yaml").write_text("hydra: [unclosed\n")


@pytest.mark.parametrize("args,words", SWEEP_RESUME_CASES, ids=[case_id(c) for c in SWEEP_RESUME_CASES])
def test_sweep_resume(args: list[str], words: list[str], bad_files: Path, monkeypatch, capsys) -> None:
    sweep_files(bad_files)
    before = snapshot(bad_files)
    monkeypatch.chdir(bad_files)
    code, err = call_app("resnet_exp.run", fill(args, bad_files), monkeypatch, capsys)
    assert code == 2, err
    assert_one_line_error(code, err, [w.replace("{tmp}", str(bad_files)) for w in words])
    assert snapshot(bad_files) == before  # no job folder, multirun.yaml as it was
