"""Every training switch at once (a torchvision policy, random erasing, MixUp/CutMix, EMA, TTA,
early stopping), on both loaders: a run stopped mid-epoch (SIGTERM, whose handler saves that very
step) and resumed ends exactly as the uninterrupted run, early stopping included.

6 steps an epoch; the stop comes after step 10, in the second epoch; early stopping (min_delta=1:
only the first validation improves, patience 1) ends both runs after 2 of 3 epochs, which the
resumed run does only if the callback's state came back from the checkpoint. Each policy resumes
on each loader in tests/test_batch_policies.py (the batches of a resumed epoch)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import explain, train_in_process
from tests.test_resume import DETERMINISTIC, comparable, results

SWITCHES = ["data.random_erasing=0.5", "data.mixup_alpha=0.4", "data.cutmix_alpha=1.0", "callbacks/ema=default",
            "callbacks.ema.decay=0.9", "module.tta=flip", "callbacks/early_stopping=default",
            "callbacks.early_stopping.patience=1", "callbacks.early_stopping.min_delta=1.0"]


@pytest.mark.slow
@pytest.mark.parametrize("loader,policy", [("torch", "trivialaugment"), ("gpu", "autoaugment")])
def test_every_switch_resumes_exactly(tmp_path: Path, loader: str, policy: str) -> None:
    args = [*DETERMINISTIC, "logger.wandb.mode=disabled", "trainer.max_epochs=3", f"data.loader={loader}",
            f"data.augment={policy}", *SWITCHES, "+callbacks.killer._target_=tests.helpers.kill_at_step.KillAtStep"]
    whole, part = tmp_path / "whole", tmp_path / "part"
    proc = train_in_process(*args, f"hydra.run.dir={whole}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    proc = train_in_process(*args, f"hydra.run.dir={part}", cwd=tmp_path, KILL_AT_STEP="10", KILL_SIGNAL="SIGTERM")
    assert proc.returncode == 143 and not (part / "results.json").exists(), explain(proc)

    proc = train_in_process(f"resume={part}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert comparable(part) == comparable(whole)
    expected = results(whole)
    assert expected["epochs"] == 2 and expected["stopped_early"]["epoch"] == 1
    assert expected["ema"] == {"decay": 0.9, "update_every_n_steps": 1, "update_starting_at_step": None}
