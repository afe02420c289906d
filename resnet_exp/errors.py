"""Errors meant for the person at the keyboard: printed as one line, never as a traceback."""

import argparse
import sys
from typing import NoReturn


class UserError(Exception):
    """Bad input from the user (config, files, command line); its message is the whole story."""


class ConfigError(UserError, ValueError):
    """The composed config is not acceptable: a value out of range or options that disagree.

    Also a ValueError, so Python callers of `create_model` or `ImageDataModule` can catch it as one."""


class DataError(UserError):
    """A dataset cannot be found, read or trusted."""


def first_line(text: object) -> str:
    """The first non-blank line of a message, stripped: what fits in a one-line error."""
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, with a bad command line reported like every other error: one line, exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message}; see {self.prog} --help", file=sys.stderr)
        sys.exit(2)


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite: the hyperparameters, not the code, are at fault."""

    def __init__(self, step: int, loss: float, lr: float) -> None:
        super().__init__(f"training diverged: loss is {loss} by step {step} at learning rate {lr:g}; "
                         "lower optimizer.lr or add a warm-up (scheduler.warmup)")
        self.step, self.loss, self.lr = step, loss, lr
