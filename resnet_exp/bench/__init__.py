"""`python -m resnet_exp.bench`: time one net on synthetic input, and the table of a bench sweep. The
framework's own benchmarks (BENCHMARKS.md) are `python -m benchmarks`, beside the package."""
