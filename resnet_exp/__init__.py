"""resnet_exp: Hydra + PyTorch Lightning experiments with residual networks."""

__version__ = "0.1.0"
