"""wandb follows WANDB_MODE, survives an unreachable server, and no secret reaches a run folder."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import wandb

from resnet_exp.loggers import check_wandb_environment, wandb_logger, wandb_mode
from tests.helpers.cli import TINY_RUN, explain, run_train, train_in_process


@pytest.mark.parametrize("env,config,expected", [
    ("offline", "auto", "offline"), ("disabled", "auto", "disabled"), ("dryrun", "auto", "offline"),
    ("offline", "online", "online"), ("online", "offline", "offline"), ("", "auto", "online"),
])
def test_environment_is_honoured_under_auto_and_config_wins(env, config, expected, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_MODE", env)
    assert wandb_mode(config) == expected


def test_disabled_in_the_environment_means_no_logger(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_logger("auto", save_dir=str(tmp_path)) is None


@pytest.mark.parametrize("value", ["OFFLINE", "offline ", " Disabled", "dryrun"])
def test_wandb_mode_in_another_case_or_with_spaces_is_normalised_for_wandb(value: str, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", value)
    check_wandb_environment()
    assert os.environ["WANDB_MODE"] == value.strip().lower()
    wandb.Settings().update_from_env_vars(dict(os.environ))  # what wandb.init reads: accepted now


def test_a_run_with_wandb_mode_in_capitals_logs_offline(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = train_in_process(*TINY_RUN, "trainer.max_epochs=1", "logger.wandb.mode=offline", f"hydra.run.dir={run}",
                            cwd=tmp_path, WANDB_MODE="OFFLINE ")
    assert proc.returncode == 0, explain(proc)
    assert (run / "results.json").is_file() and list((run / "wandb").glob("offline-run-*"))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


FAKE_SECRETS = {"WANDB_API_KEY": "f00dfeed" * 5, "MY_SERVICE_TOKEN": "tok-3b9c0e1d7a", "HF_KEY": "hfk-91aa3c"}


@pytest.mark.slow
def test_unreachable_wandb_falls_back_to_offline_and_no_secret_is_written(tmp_path: Path) -> None:
    run = tmp_path / "run"
    started = time.monotonic()
    proc = run_train(*TINY_RUN, "trainer.max_epochs=1", "logger.wandb.mode=auto", f"hydra.run.dir={run}",
                     cwd=tmp_path, WANDB_BASE_URL=f"http://127.0.0.1:{closed_port()}", **FAKE_SECRETS)
    assert proc.returncode == 0, explain(proc)
    assert time.monotonic() - started < 240
    warnings = [line for line in (proc.stdout + proc.stderr).splitlines() if "cannot reach" in line]
    assert len(warnings) == 1, explain(proc)
    assert (run / "results.json").is_file() and list((run / "wandb").glob("offline-run-*"))
    files = [p for p in run.rglob("*") if p.is_file()]
    assert any(p.parent.name == ".hydra" for p in files) and any(p.suffix == ".wandb" for p in files)
    for path in files:
        data = path.read_bytes()
        for name, value in FAKE_SECRETS.items():
            assert value.encode() not in data, f"{name} found in {path}"
