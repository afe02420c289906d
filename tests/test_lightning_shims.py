"""Internals of Lightning, torchmetrics and torch: used in resnet_exp/callbacks/lightning_shims.py
only, each checked here with a message naming the installed version when it stops working.

The second half reads resnet_exp with `ast` (and imports it, to know each class's bases) and
fails on any other use of a private name of those libraries: an attribute (`obj._x`, or
`self._x` in a subclass of one of their classes), a private method overridden in such a
subclass, a private name given as a string (`getattr(obj, "_x")`, `name == "_x"`), or a
private module.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import textwrap
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torchmetrics
from torch.utils.data import DataLoader, TensorDataset

from resnet_exp.callbacks.lightning_shims import (
    HOOK_NAME_ATTRIBUTE,
    WANDB_INIT_ATTRIBUTE,
    FastHookName,
    compile_count,
    drop_wandb_anonymous,
)
from tests.helpers.cli import REPO_ROOT
from tests.test_step_timer import Tiny

PACKAGE = REPO_ROOT / "resnet_exp"
SHIMS = PACKAGE / "callbacks" / "lightning_shims.py"
LIBRARIES = ("pytorch_lightning", "lightning_fabric", "torchmetrics", "torch")
UPDATE = "update resnet_exp/callbacks/lightning_shims.py"


# ---------------------------------------------------------------------------- the shims
class RecordsHookName(FastHookName, Tiny):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Any] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.seen.append(getattr(self, HOOK_NAME_ATTRIBUTE, "<missing>"))
        self.log("loss", 1.0)  # Lightning reads the hook name to file the value
        return super().training_step(batch, batch_idx)


def test_lightning_sets_the_hook_name_on_the_module(tmp_path: Path) -> None:
    module = RecordsHookName()
    data = TensorDataset(torch.randn(4, 3, 8, 8), torch.randint(0, 3, (4,)))
    trainer = pl.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, DataLoader(data, batch_size=4))
    assert module.seen == ["training_step"] and HOOK_NAME_ATTRIBUTE in vars(pl.LightningModule()), (
        f"pytorch_lightning {pl.__version__} no longer sets LightningModule.{HOOK_NAME_ATTRIBUTE} around hook "
        f"calls (seen in training_step: {module.seen}): {UPDATE} (FastHookName)")
    assert "loss" in trainer.callback_metrics
    assert HOOK_NAME_ATTRIBUTE not in dict(module.named_modules()) | dict(module.named_buffers())


def test_dynamo_counts_the_graphs_it_compiles() -> None:
    import torch._dynamo.utils  # what a torch.compile run has imported by the time it compiles

    before = compile_count()
    compiled = torch.compile(lambda x: x * 2 + 1, backend="eager")
    compiled(torch.ones(3))
    assert compile_count() == before + 1, (
        f"torch {torch.__version__}: torch._dynamo.utils.counters['stats']['unique_graphs'] no longer counts "
        f"compiled graphs: {UPDATE} (compile_count)")


def test_wandb_logger_passes_anonymous_to_wandb_init(tmp_path: Path) -> None:
    from pytorch_lightning.loggers import WandbLogger

    logger = WandbLogger(save_dir=str(tmp_path), mode="disabled")
    init = getattr(logger, WANDB_INIT_ATTRIBUTE, None)
    assert isinstance(init, dict) and "anonymous" in init, (
        f"pytorch_lightning {pl.__version__}: WandbLogger no longer keeps wandb.init's arguments, with "
        f"anonymous among them, in {WANDB_INIT_ATTRIBUTE}: {UPDATE} (drop_wandb_anonymous; maybe no longer needed)")
    assert "anonymous" not in getattr(drop_wandb_anonymous(logger), WANDB_INIT_ATTRIBUTE)
    assert init["project"] == "lightning_logs"  # the other arguments stay


# ---------------------------------------------------------------------------- private names
def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def from_library(cls: type) -> bool:
    return cls.__module__.split(".")[0] in LIBRARIES


@cache
def class_privates(cls: type) -> frozenset[str]:
    """Private names that the library classes among `cls` and its bases define: methods, class
    attributes, and attributes their code assigns on `self`."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if not from_library(klass):
            continue
        names |= {n for n in vars(klass) if is_private(n)}
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        names |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                  and isinstance(node.value, ast.Name) and node.value.id == "self" and is_private(node.attr)}
    return frozenset(names)


@cache
def library_privates() -> frozenset[str]:
    """Private names of the library objects the project handles: trainer and its loops, module,
    datamodule, callbacks, loggers, profiler, checkpoint IO, metrics."""
    from lightning_fabric.plugins import TorchCheckpointIO
    from pytorch_lightning import callbacks, loggers, profilers
    from pytorch_lightning.utilities.combined_loader import CombinedLoader

    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    objects = [trainer, trainer.fit_loop, trainer.fit_loop.epoch_loop, trainer.strategy, trainer.accelerator]
    classes = [type(o) for o in objects] + [
        pl.LightningModule, pl.LightningDataModule, CombinedLoader, callbacks.ModelCheckpoint,
        callbacks.RichProgressBar, callbacks.TQDMProgressBar, callbacks.LearningRateMonitor,
        callbacks.RichModelSummary, loggers.CSVLogger, loggers.WandbLogger, loggers.csv_logs.ExperimentWriter,
        profilers.PassThroughProfiler, TorchCheckpointIO, torchmetrics.MaxMetric, torchmetrics.MeanMetric,
        torchmetrics.MetricCollection, torchmetrics.classification.MulticlassAccuracy]
    return frozenset().union(*(class_privates(c) for c in classes))


def library_bases(cls: type | None) -> bool:
    return cls is not None and any(from_library(k) for k in cls.__mro__[1:] if k is not object)


class PrivateUse(ast.NodeVisitor):
    """Collects `file:line: what` for each use of a library's private name in one module."""

    def __init__(self, module: Any, path: Path) -> None:
        self.module, self.path = module, path
        self.found: list[str] = []
        self.classes: list[type | None] = []

    def report(self, node: ast.AST, what: str) -> None:
        where = self.path.relative_to(REPO_ROOT) if self.path.is_relative_to(REPO_ROOT) else self.path.name
        self.found.append(f"{where}:{node.lineno}: {what}")

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        outer = self.classes[-1] if self.classes else self.module
        self.classes.append(getattr(outer, node.name, None))
        self.generic_visit(node)
        self.classes.pop()

    def own_class(self) -> type | None:
        return self.classes[-1] if self.classes else None

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        cls = self.own_class()
        if library_bases(cls) and is_private(node.name) and node.name in class_privates(cls):
            self.report(node, f"overrides {cls.__name__}.{node.name} of its library base")
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if is_private(node.attr):
            receiver = node.value.id if isinstance(node.value, ast.Name) else None
            cls = self.own_class()
            if receiver in ("self", "cls"):
                if library_bases(cls) and node.attr in class_privates(cls):
                    self.report(node, f"{receiver}.{node.attr} belongs to a library base of {cls.__name__}")
            elif receiver in LIBRARIES:
                self.report(node, f"{receiver}.{node.attr} is a private module")
            elif node.attr in library_privates():
                self.report(node, f".{node.attr} is a private attribute of a library object")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        """`getattr(obj, "_x")` and its kin."""
        name = node.args[1] if len(node.args) > 1 else None
        if (isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
                and isinstance(name, ast.Constant) and name.value in library_privates()):
            self.report(name, f"{node.func.id}(..., {name.value!r}) reads a library's private attribute")
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        """`name == "_x"`, as in a `__setattr__` that singles out a library's attribute."""
        for side in (node.left, *node.comparators):
            if isinstance(side, ast.Constant) and side.value in library_privates():
                self.report(side, f"compares with {side.value!r}, a library's private attribute")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and any(node.value.startswith(f"{lib}.") and "._" in node.value
                                               for lib in LIBRARIES):
            self.report(node, f"the string {node.value!r} names a library's private module")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        root = (node.module or "").split(".")[0]
        if root in LIBRARIES and ("._" in f".{node.module}" or any(is_private(a.name) for a in node.names)):
            self.report(node, f"imports private {node.module}: {', '.join(a.name for a in node.names)}")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] in LIBRARIES and "._" in f".{alias.name}":
                self.report(node, f"imports private {alias.name}")


def private_uses(module: Any, path: Path) -> list[str]:
    visitor = PrivateUse(module, path)
    visitor.visit(ast.parse(path.read_text(), filename=str(path)))
    return visitor.found


def package_modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def test_no_module_but_the_shims_touches_library_internals() -> None:
    found = []
    for name, path in package_modules():
        if path != SHIMS:  # entry modules are read, not run: their classes are not resolved
            found += private_uses(None if name.endswith("__main__") else importlib.import_module(name), path)
    assert not found, "private Lightning/torchmetrics/torch names outside " \
                      "resnet_exp/callbacks/lightning_shims.py:\n" + "\n".join(found)


FIVE_CASES = '''
import pytorch_lightning as pl
import torchmetrics
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter


class Module(pl.LightningModule):
    def __setattr__(self, name, value):
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def on_load_checkpoint(self, checkpoint):
        best = torchmetrics.MaxMetric()
        best._update_count = 1


class Checkpoint(ModelCheckpoint):
    def on_train_batch_end(self, *args):
        if self._every_n_train_steps < 1:
            return


def fetch_clock(trainer):
    return getattr(trainer.fit_loop, "_combined_loader", None)


class Writer(ExperimentWriter):
    def _check_log_dir_exists(self):
        pass


class Logger(CSVLogger):
    @property
    def experiment(self):
        return self._experiment
'''


def test_the_check_catches_each_kind_of_use(tmp_path: Path) -> None:
    path = tmp_path / "five_cases.py"
    path.write_text(FIVE_CASES)
    spec = importlib.util.spec_from_file_location("five_cases", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines = FIVE_CASES.splitlines()
    found = {lines[int(f.split(":")[1]) - 1].strip() for f in private_uses(module, path)}
    assert found == {'if name == "_current_fx_name":', "best._update_count = 1", "if self._every_n_train_steps < 1:",
                     'return getattr(trainer.fit_loop, "_combined_loader", None)',
                     "def _check_log_dir_exists(self):", "return self._experiment"}


def test_own_private_names_are_not_flagged(tmp_path: Path) -> None:
    path = tmp_path / "own.py"
    path.write_text("import sys\nfrom pytorch_lightning.callbacks import Callback\n\n\nclass Mine(Callback):\n"
                    "    def __init__(self):\n        self._mine = sys._getframe(0)\n\n"
                    "    def _helper(self):\n        other = Mine()\n        return other._mine\n")
    spec = importlib.util.spec_from_file_location("own", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert private_uses(module, path) == []

