"""`python -m resnet_exp.eval ckpt_path=<file>`: the checkpoint's run rebuilt and tested again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.helpers.cli import TINY_RUN, explain, run_cli, run_in_process, train_in_process


def test_eval_reproduces_the_runs_test_metrics(trained_run: Path, tmp_path: Path) -> None:
    train_dir, eval_dir = trained_run, tmp_path / "eval"
    trained = json.loads((train_dir / "results.json").read_text())
    best = train_dir / trained["best_checkpoint"]

    proc = run_in_process("resnet_exp.eval", f"ckpt_path={best}", f"hydra.run.dir={eval_dir}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    evaluated = json.loads((eval_dir / "results.json").read_text())
    assert evaluated["status"] == "evaluated" and evaluated["checkpoint"] == str(best)
    assert (evaluated["test/acc"], evaluated["test/loss"]) == (trained["test/acc"], trained["test/loss"])
    assert not (eval_dir / "checkpoints").exists() and not (eval_dir / "wandb").exists()


def test_eval_with_a_bad_value_leaves_no_folder(trained_run: Path, tmp_path: Path) -> None:
    """A real process: exit code 2 and the one line as the shell sees them."""
    eval_dir = tmp_path / "eval"
    proc = run_cli("resnet_exp.eval", f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}",
                   "data.batch_size=0", f"hydra.run.dir={eval_dir}", cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert proc.stderr.strip().splitlines()[-1] == "error: data.batch_size=0: must be > 0"
    assert not eval_dir.exists()


def test_eval_without_checkpoint_says_what_is_needed(tmp_path: Path) -> None:
    proc = run_in_process("resnet_exp.eval", cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert proc.stderr.strip() == "error: ckpt_path: required; evaluate a checkpoint with ckpt_path=<file>"


def test_eval_tests_the_whole_test_split_unless_its_own_command_limits_it(tmp_path: Path) -> None:
    """A run trained with trainer.limit_test_batches=1 (32 of its 64 test images): eval tests all 64,
    as the same file evaluated outside any run does; typed on eval, the limit applies again."""
    run = tmp_path / "run"
    proc = train_in_process(*TINY_RUN, "trainer.max_epochs=1", "trainer.limit_test_batches=1",
                            f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    trained = json.loads((run / "results.json").read_text())
    best = run / trained["best_checkpoint"]
    outside = tmp_path / "outside.ckpt"
    shutil.copy(best, outside)

    def evaluate(name: str, *args: str) -> dict:
        proc = run_in_process("resnet_exp.eval", *args, f"hydra.run.dir={tmp_path / name}", cwd=tmp_path)
        assert proc.returncode == 0, explain(proc)
        return json.loads((tmp_path / name / "results.json").read_text())

    whole = evaluate("whole", f"ckpt_path={best}")
    alone = evaluate("alone", f"ckpt_path={outside}", *[a for a in TINY_RUN if not a.startswith("logger.")])
    limited = evaluate("limited", f"ckpt_path={best}", "trainer.limit_test_batches=1")
    assert (whole["test/acc"], whole["test/loss"]) == (alone["test/acc"], alone["test/loss"])
    assert (limited["test/acc"], limited["test/loss"]) == (trained["test/acc"], trained["test/loss"])
    assert (whole["test/acc"], whole["test/loss"]) != (limited["test/acc"], limited["test/loss"])


def test_eval_names_the_arch_of_the_checkpoints_own_net(tmp_path: Path) -> None:
    """`arch=resnet18` typed on eval of a quick-start checkpoint composes the recipe's 8-layer net
    under that name (the recipe sets the arch's keys): the weights fit, and results.json names
    the arch the checkpoint was trained with."""
    run = tmp_path / "run"
    tiny = ["experiment=quickstart", "data=synthetic_fashion_mnist", "data.train_size=96", "data.val_size=32",
            "data.test_size=32", "data.batch_size=32", "data.eval_batch_size=32", "trainer.accelerator=cpu",
            "trainer.devices=1", "logger.wandb.mode=disabled", "trainer.max_epochs=1"]
    proc = train_in_process(*tiny, f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    proc = run_in_process("resnet_exp.eval", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "arch=resnet18",
                          f"hydra.run.dir={tmp_path / 'eval'}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    evaluated = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert (evaluated["arch"], evaluated["depth"]) == ("custom", 8)


def test_a_checkpoint_holding_python_objects_is_named_in_whole_words(trained_run: Path, tmp_path: Path) -> None:
    import argparse

    import torch

    saved = torch.load(trained_run / "checkpoints" / "last.ckpt", weights_only=True)
    saved["extra"] = argparse.Namespace(lr=0.1)  # what a hand-made checkpoint may hold
    odd = trained_run / "checkpoints" / "odd.ckpt"
    torch.save(saved, odd)
    proc = run_in_process("resnet_exp.eval", f"ckpt_path={odd}", cwd=tmp_path)
    odd.unlink()
    assert proc.returncode == 2, explain(proc)
    assert proc.stderr.strip() == (f"error: {odd}: not a readable checkpoint (it holds a Python object, "
                                   "argparse.Namespace, that loading with weights_only=True refuses); "
                                   "pass a .ckpt file written by a run")


def test_shortened_cuts_at_a_word() -> None:
    from resnet_exp.errors import shortened

    text = "please torch.save your checkpoint with plain values"
    assert shortened(text, 30) == "please torch.save your ..."
    assert shortened(text, 100) == text
