"""Lightning callbacks of the framework (no Hydra here: they receive plain arguments)."""

from resnet_exp.callbacks.progress import SyncFreeRichProgressBar
from resnet_exp.callbacks.step_timer import StepTimer
from resnet_exp.callbacks.timer_results import step_time_summary, time_to_accuracy

__all__ = ["StepTimer", "SyncFreeRichProgressBar", "step_time_summary", "time_to_accuracy"]
