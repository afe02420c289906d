"""Rebuild the report of a sweep folder: `python -m resnet_exp.report <sweep dir>`."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from resnet_exp.errors import OneLineArgumentParser, UserError
from resnet_exp.report import SUMMARY_MD
from resnet_exp.report.tables import build_report


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineArgumentParser(
        prog="python -m resnet_exp.report",
        description="Summarise a Hydra multirun folder: summary.csv, summary.md and plots "
                    "(accuracy and step time vs depth, one line per block order) in that folder.")
    parser.add_argument("sweep_dir", help="the sweep folder, e.g. outputs/train/multiruns/<time>")
    parser.add_argument("--no-plots", action="store_true", help="write only summary.csv and summary.md")
    parser.add_argument("-q", "--quiet", action="store_true", help="do not print the table")
    args = parser.parse_args(argv)
    try:
        report = build_report(args.sweep_dir, plots=not args.no_plots)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. a sweep folder we may read but not write
        print(f"error: {args.sweep_dir}: cannot write the report: {exc}", file=sys.stderr)
        return 1
    for row in report.rows:
        if row["status"] == "unreadable":
            print(f"warning: {report.sweep_dir / row['job']}: {row['error']}", file=sys.stderr)
    if not args.quiet:
        print((report.sweep_dir / SUMMARY_MD).read_text())
    for name in report.skipped_plots:
        print(f"no plot {name}: no completed job with a depth and that metric")
    print("wrote " + ", ".join(str(p) for p in report.files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
