"""TimeToAccuracy: validation metrics against training wall time; RunClock: wall time over resumed segments."""

from __future__ import annotations

import csv
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from resnet_exp.io import rounded, write_csv
from resnet_exp.speed import synchronize

TTA_FILE = "time_to_accuracy.csv"
WALL_TIME_KEY = "run_wall_time_s"  # the checkpoint key of the run's wall time so far (RunClock)
TTA_COLUMNS = ("epoch", "step", "train_time_s", "val/acc", "val/loss")


class TimeToAccuracy(Callback):
    """Training wall time (validation excluded) and the metrics at the end of each validation; the clock
    synchronizes once when a validation starts, so that queued training work counts as training."""

    def __init__(self, output_dir: str | None = None, file: str = TTA_FILE) -> None:
        super().__init__()
        if not file:
            raise ValueError("callbacks.time_to_accuracy.file: must be a file name (turn the callback off "
                             "with callbacks.time_to_accuracy=null)")
        self.output_dir = output_dir
        self.file = file
        self.points: list[dict[str, Any]] = []
        self._resumed_at_step = 0  # the checkpoint's global step: the fit continues the file
        self._total_s = 0.0
        self._since: float | None = None  # host clock when the clock last started running
        self._path: Path | None = None  # None on processes that do not write (rank > 0)

    def path(self, trainer: pl.Trainer) -> Path:
        return Path(self.output_dir or trainer.default_root_dir) / self.file

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        self._resumed_at_step = int(checkpoint.get("global_step", 0))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A new fit: keep the file's points of the steps the checkpoint covers (resume)."""
        self._path = self.path(trainer) if trainer.is_global_zero else None
        steps = self._resumed_at_step
        self.points = [p for p in read_points(self._path) if p["step"] <= steps] if self._path and steps else []
        self._total_s = self.points[-1]["train_time_s"] if self.points else 0.0
        self._since = None
        if self._path is not None:
            write_csv(self._path, TTA_COLUMNS, ([p[c] for c in TTA_COLUMNS] for p in self.points))

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start the clock, or keep it running."""
        if self._since is None:
            self._since = time.perf_counter()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.on_train_end(trainer, pl_module)  # pause the clock

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        metrics = trainer.callback_metrics
        point = {"epoch": trainer.current_epoch, "step": trainer.global_step,
                 "train_time_s": rounded(self._total_s, 4),
                 **{key: None if (v := metrics.get(key)) is None else rounded(float(v), 6) for key in TTA_COLUMNS[3:]}}
        self.points.append(point)
        if self._path is not None:
            with self._path.open("a", newline="") as handle:
                csv.writer(handle).writerow([point[c] for c in TTA_COLUMNS])
        self.on_train_epoch_start(trainer, pl_module)  # training goes on

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Pause the clock (after the device finished the queued training work)."""
        if self._since is not None:
            synchronize(pl_module.device)
            self._total_s += time.perf_counter() - self._since
            self._since = None


def read_points(path: Path | None) -> list[dict[str, Any]]:
    """The points of a time_to_accuracy.csv (empty when there is none)."""
    if path is None or not Path(path).is_file():
        return []
    with Path(path).open(newline="") as handle:
        return [{"epoch": int(r["epoch"]), "step": int(r["step"]), "train_time_s": float(r["train_time_s"]),
                 **{c: float(r[c]) if r.get(c) else None for c in TTA_COLUMNS[3:]}}
                for r in csv.DictReader(handle)]


class RunClock(Callback):
    """Wall time of fit and test over all segments: each checkpoint holds the total so far, a resumed run starts
    from it (`carried_s`). Monotonic, so ddp_spawn's ranks share the launcher's clock."""

    def __init__(self, carried_s: float = 0.0) -> None:
        super().__init__()
        self.carried_s = carried_s
        self._since: float | None = None

    @staticmethod
    def carried_from(checkpoint: Mapping[str, Any] | None) -> float:
        """The wall time a checkpoint's dict holds (0 without it)."""
        return float((checkpoint or {}).get(WALL_TIME_KEY) or 0.0)

    def start(self) -> None:
        self._since = time.monotonic()

    def total_s(self) -> float:
        return self.carried_s + (time.monotonic() - self._since if self._since is not None else 0.0)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint[WALL_TIME_KEY] = round(self.total_s(), 3)
