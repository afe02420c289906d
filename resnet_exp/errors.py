"""Errors for the person at the keyboard, printed as one line, never as a traceback, and the check of a user
value that raises them: `key=value: what is allowed` (`in_group` puts the group in front). Pure Python."""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from typing import Any, NoReturn, TypeVar


class UserError(Exception):
    """Bad input from the user (config, files, command line); its message is the whole story."""


class ConfigError(UserError, ValueError):
    """A config value out of range, or options that disagree; a ValueError for Python callers too."""


class DataError(UserError):
    """A dataset cannot be found, read or trusted."""


# What to do about a diverged run: the error says it, and README.md quotes it (a test checks).
DIVERGED_ADVICE = ("lower optimizer.lr, add a warm-up (scheduler.warmup=linear scheduler.warmup_length=N) "
                   "or clip the gradients (trainer.gradient_clip_val=1.0)")


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite: the hyperparameters, not the code, are at fault."""

    def __init__(self, step: int, loss: float, lr: float) -> None:
        super().__init__(f"training diverged: loss is {loss} by step {step} at learning rate {lr:g}; "
                         + DIVERGED_ADVICE)
        self.step, self.loss, self.lr = step, loss, lr


class Terminated(Exception):
    """SIGTERM (a batch scheduler's time limit, `kill`); the message says where the run stopped and how to
    continue it. Not a UserError: it exits with 128 + 15."""

    @staticmethod
    def behind(exc: BaseException) -> Terminated | None:
        """The Terminated that `exc` is or was raised from (Hydra's instantiate wraps it), else None."""
        for _ in range(100):  # a chain is short; the bound only guards against a cycle
            if exc is None or isinstance(exc, Terminated):
                return exc
            exc = exc.__cause__ or exc.__context__
        return None


def first_line(text: object) -> str:
    """The first non-blank line of a message, stripped: what fits in a one-line error."""
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def shortened(text: str, width: int) -> str:
    """`text` cut to at most `width` characters at a word boundary, marked with " ..." where cut."""
    return textwrap.shorten(text, width, placeholder=" ...") if len(text) > width else text


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, with a bad command line reported like every other error: one line, exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message}; see {self.prog} --help", file=sys.stderr)
        sys.exit(2)


E = TypeVar("E", bound=Enum)


def is_number(value: object) -> bool:
    """An int or a float, and not a bool (which Python counts as an int)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def require(condition: bool, key: str, value: object, allowed: str) -> None:
    """Raise `ConfigError("key=value: allowed")` (also a ValueError) unless `condition` holds."""
    if not condition:
        raise ConfigError(f"{key}={value}: {allowed}")


def str_enum(name: str, values: str, module: str) -> Any:
    """A str Enum of the space-separated `values`, each member named by its value (`Loader.gpu == "gpu"`, and
    OmegaConf's enum_to_str gives the value); `module`: the caller's `__name__`, where pickle finds the class."""
    return Enum(name, [(v, v) for v in values.split()], type=str, module=module)


def parse_enum(enum: type[E], key: str, value: object) -> E:
    """`value` (a member or its string) as a member of `enum`, or the one-line error listing them."""
    if isinstance(value, enum):
        return value
    raw = value.value if isinstance(value, Enum) else value
    allowed = [m.value for m in enum]
    require(raw in allowed, key, raw, "must be one of " + ", ".join(allowed))
    return enum(raw)


@contextmanager
def in_group(group: str) -> Iterator[None]:
    """Name the config group in the key of a one-line error raised inside (`data.batch_size=0: ...`)."""
    try:
        yield
    except ConfigError as exc:
        raise ConfigError(f"{group}.{exc}") from None
