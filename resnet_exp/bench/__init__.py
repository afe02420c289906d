"""`python -m resnet_exp.bench`: time one net on synthetic input (the framework's own benchmarks: `benchmarks/`)."""
