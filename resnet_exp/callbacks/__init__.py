"""Lightning callbacks of the framework (no Hydra here: they receive plain arguments)."""

from resnet_exp.callbacks.progress import SyncFreeRichProgressBar
from resnet_exp.callbacks.step_timer import StepTimer, step_time_summary

__all__ = ["StepTimer", "SyncFreeRichProgressBar", "step_time_summary"]
