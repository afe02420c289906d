"""Benchmarks: `python -m resnet_exp.bench` (one net, synthetic input), `python -m benchmarks.loader`
(loader throughput) and `python -m benchmarks` (the figures of BENCHMARKS.md)."""
