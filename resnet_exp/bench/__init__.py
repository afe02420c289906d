"""Benchmarks: `python -m resnet_exp.bench` (one net, synthetic input), `python -m resnet_exp.bench.loader`
(loader throughput) and `python -m resnet_exp.bench.suite` (the figures of BENCHMARKS.md)."""
