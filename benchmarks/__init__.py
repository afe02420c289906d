"""Benchmarks that regenerate BENCHMARKS.md: `python -m benchmarks --help`."""
