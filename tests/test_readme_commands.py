"""Every shell command in README.md's code blocks runs here, so that a renamed key, option or entry
point breaks the suite, not the reader.

Blocks: fenced ```bash blocks (one command a line, a trailing `# comment` dropped) and ```console
blocks (`$ command` lines, each followed by the output the README shows).

How a command is checked, decided per command by `plan()`:
- `make TARGET ...`: `make -n` (what make would run; a real make would build .venv). The
  `python -m resnet_exp.run ...` line it prints is then checked like a typed command.
- `-m` (a sweep, a search; but `-m resume=`: see placeholders): run for real, as typed, from a
  scratch working directory with nothing but its data (real Fashion-MNIST from the system copy; a
  tiny CIFAR-10 in the original format written to `data/`), with only the tiny overrides of
  `SWEEP_TINY` appended (a search: one trial) and no `hydra.*` folder key added; every job must
  complete and the sweep's summary land under `outputs/` of that directory.
- `optuna ...` (Optuna's command line): run against the study of the tiny search below;
  `optuna-dashboard URL` (an optional extra): the URL must open a study.
- `outputs/.../<time>` placeholders: filled with a run folder and a sweep folder that a tiny
  synthetic run made here first; then run for real (a resumed run or sweep keeps its tiny
  overrides).
- `data=synthetic` training: run for real with the tiny overrides appended (seconds).
- other training and bench commands: composed with `--cfg job` (their data, CIFAR, and their
  hours are not available here).
- `--help`, `report`, `eval`: run as written (after placeholders).
- `python -m benchmarks ...`: run with `--dry-run` (every option parsed, nothing measured or written).
- Entry points run in this process (`run_in_process`), `make -n` in a real one.
- `$ command` in a console block: run; stderr's first line must match the README's line up to
  its `...`, and the exit code must be 2 (a user error).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import data_files
from tests.helpers.cli import REPO_ROOT, TINY_RUN, cli_env, explain, run_in_process

pytestmark = pytest.mark.slow

README = REPO_ROOT / "README.md"
TIME = "2026-01-01_00-00-00"
ENTRY_POINTS = ("resnet_exp.run", "resnet_exp.eval", "resnet_exp.bench", "resnet_exp.report",
                "benchmarks")
OPTUNA_TOOLS = ("optuna", "optuna-dashboard")
ONE_TRIAL = ["hydra.sweeper.n_trials=1"]


@dataclass(frozen=True)
class Command:
    text: str
    expected: str | None = None  # console blocks: the output line shown under the command


def readme_commands(text: str) -> list[Command]:
    commands: list[Command] = []
    for lang, body in re.findall(r"^```(bash|console)\n(.*?)^```", text, flags=re.S | re.M):
        lines = body.splitlines()
        for i, line in enumerate(lines):
            if lang == "bash":
                command = re.sub(r"\s+#.*$", "", line).strip()
                if command and not command.startswith("#"):
                    commands.append(Command(command))
            elif line.startswith("$ "):
                following = lines[i + 1] if i + 1 < len(lines) and not lines[i + 1].startswith("$ ") else None
                commands.append(Command(line[2:].strip(), following))
    return commands


def test_readme_has_the_commands_this_file_knows_how_to_check() -> None:
    commands = [c.text for c in readme_commands(README.read_text())]
    assert "make train" in commands and "python -m resnet_exp.run experiment=quickstart" in commands
    assert len(commands) >= 15
    for command in commands:
        assert command.startswith(("make ", "python -m ", *(f"{t} " for t in OPTUNA_TOOLS))), f"no rule for: {command}"


# ------------------------------------------------------------------------------- running them
def _run(argv: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=cli_env(PYTHONPATH=str(REPO_ROOT)), capture_output=True,
                          text=True, timeout=timeout)


def _python(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m <args>` run in this process (tests/helpers/cli.py: what a process would do, without
    importing torch and Lightning again for each of the README's commands)."""
    return run_in_process(args[0], *args[1:], cwd=cwd)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a finished tiny run at outputs/train/runs/<TIME> and a one-job sweep at
    outputs/train/multiruns/<TIME> (a one-trial search, so that it also holds a study named <TIME>),
    the folders the README's placeholders stand for."""
    work = tmp_path_factory.mktemp("readme")
    proc = _python(["resnet_exp.run", *TINY_RUN, "trainer.max_epochs=1",
                         f"hydra.run.dir=outputs/train/runs/{TIME}"], work)
    assert proc.returncode == 0, explain(proc)
    proc = _python(["resnet_exp.run", "-m", *TINY_RUN, "trainer.max_epochs=1", "hparams_search=lr_wd",
                    *ONE_TRIAL, f"hydra.sweep.dir=outputs/train/multiruns/{TIME}"], work)
    assert proc.returncode == 0, explain(proc)
    return work


# Appended to a README sweep: 2 epochs of 4 steps per job at an eighth of the width, no wandb. Recipes
# that place milestones at fractions of trainer.max_steps keep them inside the run.
SWEEP_TINY = {
    "resnet_exp.run": ["trainer.max_epochs=2", "trainer.max_steps=8", "trainer.limit_train_batches=4",
                       "trainer.limit_val_batches=1",
                       "trainer.limit_test_batches=1", "data.batch_size=16", "data.eval_batch_size=16",
                       "data.num_workers=0", "arch.width=0.125", "trainer.accelerator=cpu",
                       "logger.wandb.mode=disabled"],
    "resnet_exp.bench": ["arch.width=0.125", "bench.batch_size=1", "bench.image_size=32", "bench.batches=1",
                         "bench.burn_in=0", "bench.num_classes=10", "bench.count_flops=false"],
}
# The tiny CIFAR-10 (100 training images) needs a smaller validation split than the real one's 5000.
CIFAR_TINY = ["data.val_size=20"]


def _uses_cifar(args: list[str]) -> bool:
    return "data=cifar10" in args or any("cifar" in a for a in args if a.startswith("experiment="))


def run_sweep_as_typed(args: list[str], scratch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A README sweep from an empty working directory: it must finish every job and leave its summary
    under ./outputs (no hydra.sweep.dir given, as a user types it)."""
    module, rest = args[0], args[1:]
    tiny = SWEEP_TINY[module]
    search = any(a.startswith("hparams_search=") for a in rest)
    if search:
        tiny = [*tiny, *ONE_TRIAL]
    if module == "resnet_exp.run" and _uses_cifar(rest):
        data_files.accept_small(monkeypatch)
        data_files.write_cifar10(scratch / "data")
        tiny = [*tiny, *CIFAR_TINY]
    proc = _python([module, *rest, *tiny], scratch)
    assert proc.returncode == 0, f"sweep as typed: {' '.join(args)}\n{explain(proc)}"
    task = "bench" if module == "resnet_exp.bench" else "train"
    (sweep,) = (scratch / "outputs" / task / "multiruns").iterdir()
    if task == "bench":
        assert (sweep / "bench.csv").is_file() and (sweep / "bench.md").is_file()
        return
    summary = (sweep / "summary.csv").read_text().splitlines()
    jobs = [p for p in sweep.iterdir() if (p / ".hydra").is_dir()]
    assert len(summary) == len(jobs) + 1 and len(jobs) >= (1 if search else 2), summary
    assert all(",completed," in row for row in summary[1:]), summary
    assert str(sweep / "summary.md").split("outputs/")[1] in proc.stdout


def plan(args: list[str]) -> tuple[list[str], str]:
    """(arguments to run after `python -m`, how) for one README command's arguments."""
    module, rest = args[0], args[1:]
    if any(a in ("-m", "--multirun") for a in rest) and any(a.startswith("resume=") for a in rest):
        return args, "run (a resumed sweep repeats its own tiny overrides)"
    if any(a in ("-m", "--multirun") for a in rest):
        return args, "sweep as typed"
    if module in ("resnet_exp.report", "resnet_exp.eval") or "--help" in rest or "--cfg" in rest:
        return args, "run"
    if module == "benchmarks":
        return [module, *rest, "--dry-run"], "dry run"
    if module == "resnet_exp.run" and any(a.startswith("resume=") for a in rest):
        return args, "run (the resumed run's own overrides are the tiny ones)"
    if module == "resnet_exp.run" and "data=synthetic" in rest:
        return [module, *rest, *TINY_RUN, "trainer.max_epochs=1"], "run tiny"
    return [module, *rest, "--cfg", "job"], "composed"


def _fill(command: str) -> str:
    return command.replace("<time>", TIME)


def _python_args(command: str, work: Path) -> list[str]:
    """The `python -m ...` arguments of a README command; `make` commands through `make -n`."""
    argv = shlex.split(_fill(command))
    if argv[0] == "make":
        proc = _run(["make", "-n", "-C", str(REPO_ROOT), *argv[1:], f"PY={sys.executable}"], work)
        assert proc.returncode == 0, explain(proc)
        lines = [line for line in proc.stdout.splitlines() if " -m resnet_exp." in line]
        if argv[1] in ("test", "test-full"):  # the suite itself: make test leaves out the slow runs
            assert " -m pytest" in proc.stdout and ('-m "not slow"' in proc.stdout) == (argv[1] == "test")
            return []
        assert len(lines) == 1, proc.stdout
        argv = shlex.split(lines[0])[1:]  # drop the interpreter
    assert argv[:2] == ["python", "-m"] or argv[0] == "-m", argv
    args = argv[2:] if argv[0] == "python" else argv[1:]
    assert args[0] in ENTRY_POINTS, f"unknown entry point in: {command}"
    return args


def _optuna_tool(command: str, work: Path) -> None:
    """`optuna ...` runs (Optuna's CLI, installed with it); `optuna-dashboard URL` (an optional
    extra, and a server) is checked by opening the study at its URL."""
    import optuna

    argv = shlex.split(_fill(command))
    if argv[0] == "optuna-dashboard":
        assert optuna.get_all_study_names(argv[1].replace("sqlite:///", f"sqlite:///{work}/", 1)) == [TIME]
        return
    proc = _run([str(Path(sys.executable).with_name("optuna")), *argv[1:]], work)
    assert proc.returncode == 0, explain(proc)
    assert "COMPLETE" in proc.stdout


@pytest.mark.parametrize("command", readme_commands(README.read_text()), ids=lambda c: c.text[:70])
def test_readme_command(command: Command, work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if command.text.split()[0] in OPTUNA_TOOLS:
        return _optuna_tool(command.text, work)
    args = _python_args(command.text, work)
    if not args:  # make test: the suite itself
        return
    if command.expected is not None:  # a console example of a one-line error
        proc = _python(args, work)
        assert proc.returncode == 2, explain(proc)
        shown = command.expected.split("...")[0].rstrip()
        assert proc.stderr.splitlines()[0].startswith(shown), explain(proc)
        return
    run_args, how = plan(args)
    if how == "sweep as typed":
        run_sweep_as_typed(run_args, tmp_path, monkeypatch)
        return
    proc = _python(run_args, work)
    assert proc.returncode == 0, f"{how}: {' '.join(run_args)}\n{explain(proc)}"
    if how == "composed":
        assert "_target_" in proc.stdout  # the composed config was printed
