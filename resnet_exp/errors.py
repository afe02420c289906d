"""Errors meant for the person at the keyboard: printed as one line, never as a traceback."""


class UserError(Exception):
    """Bad input from the user (config, files, command line); its message is the whole story."""


class ConfigError(UserError):
    """The composed config is not acceptable: a value out of range or options that disagree."""


class DataError(UserError):
    """A dataset cannot be found, read or trusted."""


def first_line(text: object) -> str:
    """The first non-blank line of a message, stripped: what fits in a one-line error."""
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite: the hyperparameters, not the code, are at fault."""

    def __init__(self, step: int, loss: float, lr: float) -> None:
        super().__init__(f"training diverged: loss is {loss} by step {step} at learning rate {lr:g}; "
                         "lower optimizer.lr or add a warm-up (scheduler.warmup)")
        self.step, self.loss, self.lr = step, loss, lr
