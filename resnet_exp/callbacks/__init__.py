"""Lightning callbacks of the framework (no Hydra here: they receive plain arguments)."""

from resnet_exp.callbacks.progress import SyncFreeRichProgressBar
from resnet_exp.callbacks.results import step_time_summary, stopped_early, time_to_accuracy_points
from resnet_exp.callbacks.step_timer import StepTimer
from resnet_exp.callbacks.train_clock import TimeToAccuracy

__all__ = ["StepTimer", "SyncFreeRichProgressBar", "TimeToAccuracy", "step_time_summary", "stopped_early",
           "time_to_accuracy_points"]
