"""Run the real CLI in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# Small enough for two slow CPU cores: a tiny net, few epochs, no wandb.
TINY_TRAINING = [
    "data.batch_size=32",
    "data.num_workers=0",
    "arch=resnet18",
    "arch.width=0.125",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.max_epochs=2",
    "logger.wandb.mode=disabled",
]
# ... on a few hundred 16 px synthetic images.
TINY_RUN = [
    "data=synthetic",
    "data.image_size=16",
    "data.train_size=256",
    "data.test_size=64",
    "data.val_size=64",
    *TINY_TRAINING,
]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "HYDRA_"))}
    env.update(PYTHONUNBUFFERED="1", WANDB_SILENT="true", **extra)
    return env


def run_cli(module: str, *overrides: str, cwd: Path, timeout: float = 300,
            **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m <module> <overrides>` started in `cwd`; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *overrides],
        cwd=cwd,
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_train(*overrides: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli("resnet_exp.run", *overrides, cwd=cwd, **env)


def explain(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
