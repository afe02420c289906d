"""`python -m resnet_exp.report <sweep dir | run dir>`: a sweep's tables and plots, or a run's curves.png
and its summary block printed again."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from resnet_exp.errors import OneLineArgumentParser, UserError
from resnet_exp.io import RESULTS_FILE, is_run_dir
from resnet_exp.report import CURVES_PNG, SUMMARY_MD
from resnet_exp.report.curves import METRICS_CSV, STEP_TIMES_CSV, write_curves
from resnet_exp.report.rows import read_results_checked
from resnet_exp.report.summary import eval_summary, run_summary
from resnet_exp.report.tables import build_report


def report_run(run_dir: Path, plots: bool, quiet: bool) -> int:
    """curves.png and the summary block of one run folder; the exit status."""
    if plots:
        written = write_curves(run_dir)
        if written is None:
            print(f"error: {run_dir}: nothing to draw {CURVES_PNG} from: no readable rows in {METRICS_CSV} "
                  f"or {STEP_TIMES_CSV} (was the run started with logger=none?)", file=sys.stderr)
            return 2
        print(f"wrote {written}")
    results, problems = read_results_checked(run_dir)
    for problem in problems:
        print(f"warning: {run_dir}: {problem}", file=sys.stderr)
    if not quiet and results is not None:
        summary = eval_summary if results.get("status") == "evaluated" else run_summary
        print(summary(results, run_dir))
    elif not quiet and not problems:
        print(f"{run_dir}: no {RESULTS_FILE} (the run has not finished)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineArgumentParser(
        prog="python -m resnet_exp.report",
        description="Summarise a Hydra multirun folder (summary.csv, summary.md, the seed statistics "
                    "groups.csv and comparisons.csv, and plots of accuracy and step time vs depth and "
                    "of time to accuracy), or one run folder "
                    "(curves.png: loss, accuracy, learning rate, step times; and its summary).")
    parser.add_argument("folder", help="a sweep folder (outputs/train/multiruns/<time>) "
                                       "or a run folder (outputs/train/runs/<time>)")
    parser.add_argument("--no-plots", action="store_true", help="write no PNG files")
    parser.add_argument("-q", "--quiet", action="store_true", help="do not print the table or summary")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    try:
        if is_run_dir(folder):
            return report_run(folder, plots=not args.no_plots, quiet=args.quiet)
        report = build_report(folder, plots=not args.no_plots)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.filename or args.folder}: {exc.strerror or exc}; the report reads every job "
              "folder and writes its files into the folder given", file=sys.stderr)
        return 2
    for row in report.rows:
        for problem in row["_problems"]:
            print(f"warning: {report.sweep_dir / row['job']}: {problem}", file=sys.stderr)
    if not args.quiet:
        print((report.sweep_dir / SUMMARY_MD).read_text())
    for name in report.skipped_plots:
        print(f"no plot {name}: no completed job with a depth and that metric")
    print("wrote " + ", ".join(str(p) for p in report.files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
