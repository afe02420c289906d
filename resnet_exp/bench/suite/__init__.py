"""Benchmarks that regenerate BENCHMARKS.md: `python -m resnet_exp.bench.suite --help`."""
