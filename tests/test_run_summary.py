"""What a run tells its user at the end and on the way: plain progress lines when stdout is not a
terminal, the summary block, curves.png; `python -m resnet_exp.report <run dir>`; `--help`."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path

import pytest

from resnet_exp.callbacks.progress import LogProgress, SyncFreeRichProgressBar, progress_bar
from resnet_exp.report.__main__ import main as report_main
from resnet_exp.report.summary import eval_summary, sweep_summary
from tests.helpers.cli import TINY_RUN, explain, run_in_process, train_in_process
from tests.test_report import sweep  # noqa: F401  (fixture: a hand-made sweep folder)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PROGRESS = re.compile(r"epoch (\d+)/2  step (\d+)/(\d+)  loss (\S+)  (\d+) img/s  ETA \S+")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A 2-epoch run, 6 steps an epoch, stdout not a terminal (captured): a line every 2 steps."""
    work = tmp_path_factory.mktemp("summary")
    run_dir = work / "run"
    proc = train_in_process(*TINY_RUN, "trainer.log_every_n_steps=2", "callbacks.progress_bar.plain.every_n_steps=2",
                            "callbacks.progress_bar.plain.every_n_seconds=null", f"hydra.run.dir={run_dir}", cwd=work)
    assert proc.returncode == 0, explain(proc)
    return run_dir, proc


def test_non_terminal_run_logs_progress_lines_at_a_steady_rhythm(tiny_run) -> None:
    run_dir, proc = tiny_run
    lines = [m.groups() for m in PROGRESS.finditer(proc.stdout)]
    steps = [int(step) for _, step, _, _, _ in lines]
    assert steps == [2, 4, 6, 8, 10, 12], proc.stdout[-3000:]
    assert {int(total) for _, _, total, _, _ in lines} == {12}
    assert [int(epoch) for epoch, *_ in lines] == [1, 1, 1, 2, 2, 2]
    # The loss shown is the step loss the CSV logger wrote for that step (read only then).
    with (run_dir / "csv" / "metrics.csv").open() as handle:
        logged = {int(r["step"]) + 1: float(r["train/loss_step"]) for r in csv.DictReader(handle)
                  if r.get("train/loss_step")}
    for _, step, _, loss, _ in lines:
        assert float(loss) == pytest.approx(logged[int(step)], abs=1e-4)
    assert len(re.findall(r"epoch \d validated: val/loss", proc.stdout)) == 2
    assert "it/s" not in proc.stdout  # no rich bar in a log


def test_summary_block_says_what_the_run_folder_holds(tiny_run) -> None:
    run_dir, proc = tiny_run
    results = json.loads((run_dir / "results.json").read_text())
    block = proc.stdout[proc.stdout.index("── run summary"):]
    assert f"test accuracy     {100 * results['test/acc']:.2f} %   (loss {results['test/loss']:.4f})" in block
    # The best epoch, found here from the per-epoch val/acc rows of the CSV log.
    with (run_dir / "csv" / "metrics.csv").open() as handle:
        per_epoch = [(int(r["epoch"]) + 1, float(r["val/acc"])) for r in csv.DictReader(handle) if r.get("val/acc")]
    best_epoch = max(per_epoch, key=lambda p: (p[1], -p[0]))[0]
    assert f"best validation   {100 * results['val/acc_best']:.2f} %   at epoch {best_epoch} of 2" in block
    assert results["best_checkpoint"] == f"checkpoints/best-epoch{best_epoch:03d}.ckpt"  # counted from 1 too
    assert "training          2 epochs, 12 steps" in block
    assert f"{results['step_time']['images_per_s']:.0f} img/s" in block
    # Paths relative to where the command was started (the run's cwd is run_dir's parent).
    assert "run folder        run\n" in block
    assert f"best checkpoint   run/{results['best_checkpoint']}\n" in block
    assert "curves            run/curves.png\n" in block


def test_curves_png_is_drawn_at_the_end_and_by_the_report_cli(tiny_run, capsys) -> None:
    run_dir, _ = tiny_run
    curves = run_dir / "curves.png"
    assert curves.read_bytes().startswith(PNG_MAGIC)
    curves.unlink()
    assert report_main([str(run_dir)]) == 0
    assert curves.read_bytes().startswith(PNG_MAGIC)
    assert "── run summary" in capsys.readouterr().out


def test_report_cli_on_a_run_without_metrics_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    (tmp_path / ".hydra").mkdir()
    assert report_main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_progress_bar_is_rich_in_a_terminal_and_plain_lines_elsewhere() -> None:
    def make(style: str, tty: bool):
        return progress_bar(rich=SyncFreeRichProgressBar, plain=LogProgress, style=style,
                            is_terminal=lambda: tty)

    assert isinstance(make("auto", True), SyncFreeRichProgressBar)
    assert isinstance(make("auto", False), LogProgress)
    assert isinstance(make("plain", True), LogProgress)
    assert isinstance(make("rich", False), SyncFreeRichProgressBar)
    with pytest.raises(ValueError, match="style=fancy"):
        make("fancy", True)


def test_eval_and_sweep_summaries() -> None:
    block = eval_summary({"test/acc": 0.91234, "test/loss": 0.25, "checkpoint": "/x/best.ckpt",
                          "arch": "custom", "data": "fashion_mnist", "params": 308074}, "/y/run")
    assert "test accuracy     91.23 %   (loss 0.2500)" in block and "/x/best.ckpt" in block
    block = sweep_summary("| job |\n|---|\n| 0 |\n", "/s/summary.md", {"completed": 2, "failed": 1, "interrupted": 0})
    assert "| 0 |" in block and "jobs              3 (2 completed, 1 failed)" in block and "/s/summary.md" in block


def test_help_lists_only_the_groups_a_user_chooses(tmp_path: Path) -> None:
    proc = run_in_process("resnet_exp.run", "--help", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    groups = proc.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    assert "schema/" not in groups and "bench_recipe" not in groups
    for line in ("experiment: ", "scheduler: cosine, multistep, none, onecycle  (default: cosine)",
                 "data: cifar10, cifar100, fashion_mnist, synthetic", "hydra/launcher: basic, local, slurm"):
        assert line in groups


def test_sweep_end_prints_its_table_and_the_path_of_summary_md(sweep: Path, capsys) -> None:
    from resnet_exp.app.hydra_callbacks import SweepReport
    from tests.test_report import job_config  # the hand-made sweep of test_report.py (fixture imported above)

    SweepReport(plots=False).on_multirun_end(job_config(sweep, ""))
    out = capsys.readouterr().out
    block = out[out.index("── sweep summary"):]
    assert "| 3-resnet56-pre | completed |" in block
    assert f"summary           {sweep / 'summary.md'}\n" in block
    assert "jobs              7 (4 completed, 2 failed, 1 interrupted)" in block
