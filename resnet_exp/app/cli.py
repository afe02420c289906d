"""Run a Hydra entry point so that bad input ends in one line on stderr, not a traceback.

Hydra prints its own multi-line reports; we let its exceptions through (HYDRA_FULL_ERROR=1)
and summarise the ones caused by the user. Anything else is a bug and keeps its traceback.
Set RESNET_EXP_DEBUG=1 to see the traceback of user errors too.
"""

from __future__ import annotations

import difflib
import errno
import io
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable
from typing import TextIO

from hydra.errors import (
    CompactHydraException,
    ConfigCompositionException,
    InstantiationException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from resnet_exp.app.run_dir import note_existing_folders, refuse_existing_runs
from resnet_exp.app.signals import TERMINATED_EXIT_CODE, sigterm_raises
from resnet_exp.config import CONF_DIR
from resnet_exp.errors import Terminated, UserError, first_line

USER_ERROR_EXIT_CODE = 2


def debugging() -> bool:
    """RESNET_EXP_DEBUG=1: user errors keep their traceback."""
    return os.environ.get("RESNET_EXP_DEBUG") == "1"


def _missing_option(exc: MissingConfigException) -> str:
    group, _, choice = (exc.missing_cfg_file or "").rpartition("/")
    options = ", ".join(sorted(exc.options or []))
    if not group:
        return first_line(str(exc))
    return f"{group}={choice}: no such option; choose one of: {options}"


def _omegaconf_problem(exc: OmegaConfBaseException, override: str) -> str:
    key = exc.full_key or override
    unknown = isinstance(exc, (ConfigKeyError, ConfigAttributeError))
    if unknown and "." not in str(exc.full_key or exc.key) and (removed := _removed_group(override or key)):
        return removed
    if unknown and isinstance(exc.parent_node, DictConfig):
        known = sorted(str(k) for k in exc.parent_node.keys() if not str(k).startswith("_"))
        group = "/".join(str(key).split(".")[:-1])  # a key of an optional group that is off (null)?
        if not known and "/" in group and (CONF_DIR / group).is_dir():
            options = ", ".join(sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")))
            return f"{key}: {group} is off; turn it on first with {group}=NAME (options: {options})"
        guess = difflib.get_close_matches(str(exc.key), known, n=1)
        hint = f"did you mean {guess[0]}? " if guess else ""
        return (f"{key}: unknown key; {hint}known keys here: {', '.join(known)} "
                f"(add a new one with +{key}=...)")
    return f"{key}: {first_line(str(exc))}"


def _unparsable_override(exc: OverrideParseException) -> str:
    override = first_line(str(exc)).split(": ", 1)[-1]
    key, _, value = override.partition("=")
    return (f"{override}: Hydra cannot read this value as typed (spaces, commas, quotes, brackets and "
            f"non-ASCII letters need quotes); type it as \"{key}='{value}'\"")


def _removed_group(key: str) -> str | None:
    """The message for a key of a config group that `~group` removed (or never chose), else None."""
    group = key.split(".", 1)[0]
    if not (CONF_DIR / group).is_dir():
        return None
    return f"{key}: the {group} group has no option chosen (removed with ~{group}?); pick one with {group}=NAME"


def _option_clash(message: str) -> str | None:
    """`experiment=quickstart optimizer=adam`: a config file (a recipe) sets a key that another chosen
    option has not; Hydra says so over three lines, naming the file, the key and the schema."""
    source = re.match(r"In '([\w/]+)/([\w.-]+)': ConfigKeyError", message)
    key = re.search(r"full_key: ([\w.]+)", message)
    if not (source and key):
        return None
    group = key.group(1).split(".", 1)[0]
    if group == source.group(1):  # an option's own file against its schema: the code and conf/ disagree
        return f"{group}={source.group(2)}: its file sets {key.group(1)}, which the {group} schema has no key for"
    return (f"{source.group(1)}={source.group(2)}: sets {key.group(1)}, which the {group} option you chose does "
            f"not have; keep the {source.group(1)}'s {group}, or pick one that has that key")


def _full_key(exc: InstantiationException) -> str:
    """The config key of the node whose target failed (Hydra appends `full_key: ...`)."""
    last = str(exc).strip().splitlines()[-1]
    return last.split(": ", 1)[1] if last.startswith("full_key: ") else ""


def _disk_problem(exc: OSError) -> str:
    what = "no space left on the device" if exc.errno == errno.ENOSPC else "disk quota exceeded"
    return (f"paths.log_dir: {what} while writing {exc.filename or 'a run file'}; free some space there, "
            "or put runs on another disk with paths.log_dir=<folder> (the run can be resumed with resume=)")


def describe_user_error(exc: BaseException) -> str | None:
    """The one-line description of an error the user caused, or None for a bug."""
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return _disk_problem(exc)
    if isinstance(exc, MissingConfigException):
        return _missing_option(exc)
    if isinstance(exc, OverrideParseException):
        return _unparsable_override(exc)
    if isinstance(exc, InstantiationException):
        cause = exc.__cause__
        if isinstance(cause, UserError):
            group = _full_key(exc)  # the target's own message names its key without the group
            return str(cause) if not group or str(cause).startswith(f"{group}.") else f"{group}.{cause}"
        # A target rejecting its arguments is the user's doing; anything else is a bug.
        if not isinstance(cause, (ValueError, TypeError)) and type(cause).__name__ != "MisconfigurationException":
            return None
        return f"{first_line(str(exc))} {type(cause).__name__}: {first_line(str(cause))}"
    if isinstance(exc, ConfigCompositionException) and str(exc).startswith("Ambiguous value for argument"):
        override = str(exc).split("'")[1]
        key, _, value = override.partition("=")
        return (f"{override}: a comma separates sweep values; to keep it one value quote it "
                f"(\"{key}='{value}'\"), write [a,b] for a list, or add -m to sweep")
    if isinstance(exc, ConfigCompositionException) and (clash := _option_clash(str(exc))):
        return clash
    if isinstance(exc, ConfigCompositionException) and isinstance(exc.__cause__, OmegaConfBaseException):
        override = first_line(str(exc)).split("'")[1] if "'" in str(exc) else ""
        return _omegaconf_problem(exc.__cause__, override)
    if isinstance(exc, CompactHydraException):
        return first_line(str(exc))
    if isinstance(exc, OmegaConfBaseException):
        return _omegaconf_problem(exc, "")
    return None


class _WithoutHydraJobBanner(io.TextIOBase):
    """stderr minus Hydra's 'Error executing job with overrides' line, which in a single run
    only repeats the command line above our one-line error."""

    BANNER = "Error executing job with overrides:"

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        if not text.startswith(self.BANNER):
            self.stream.write(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return self.stream.isatty()


def route_lightning_logs_to_hydra() -> None:
    """Lightning gives its loggers a stderr handler of their own if imported before Hydra set up
    logging; send their records to Hydra's handlers instead (console and the job's log file)."""
    for name in ("lightning_fabric", "pytorch_lightning", "lightning"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


def _not_a_tip(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("💡 Tip:")


def silence_library_notices() -> None:
    """Silence, where they are issued, the notices of libraries that a user can do nothing about:
    Lightning's tips advertising its cloud packages (printed by every Trainer; no option turns them
    off) and the FutureWarning of torch's pytree about Lightning's own use of it (Lightning's code)."""
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_not_a_tip)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"pytorch_lightning\.utilities\._pytree")


def _quiet_on_broken_pipe() -> None:
    """The reader of our output went away (`--help | head`): stop without a traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # Python flushes stdout again at exit
    sys.exit(1)


def run_hydra_app(app: Callable[[], object],
                  expand_args: Callable[[list[str]], list[str]] | None = None) -> None:
    """Call a @hydra.main function; user errors exit with code 2 and one line on stderr, a SIGTERM
    with code 143 and one line (`resnet_exp.app.signals`).

    `expand_args` may rewrite the command-line arguments first (e.g. `resume=`).
    """
    debug = debugging()
    os.environ["HYDRA_FULL_ERROR"] = "1"
    silence_library_notices()
    multirun = any(arg in ("-m", "--multirun") for arg in sys.argv[1:])
    stderr = sys.stderr
    if not multirun:
        sys.stderr = _WithoutHydraJobBanner(stderr)
    typed = sys.argv[1:]
    try:
        with sigterm_raises():
            refuse_two_modes(typed)
            refuse_existing_runs(typed)
            if expand_args is not None:
                sys.argv[1:] = expand_args(sys.argv[1:])
            note_existing_folders(sys.argv[1:])
            app()
            sys.stdout.flush()
    except BrokenPipeError:
        _quiet_on_broken_pipe()
    except SystemExit:  # Hydra's --help / --cfg exit by themselves: flush while we can catch it
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_on_broken_pipe()
        raise
    except Exception as exc:
        if (terminated := Terminated.behind(exc)) is not None:
            print(f"error: {terminated}", file=stderr)
            sys.exit(TERMINATED_EXIT_CODE)
        message = describe_user_error(exc)
        if message is None or debug:
            raise
        print(f"error: {message}{_repeated_from_the_run(message, typed, sys.argv[1:])}", file=stderr)
        sys.exit(USER_ERROR_EXIT_CODE)
    finally:
        sys.stderr = stderr


# Hydra's mode flags, of which it takes one per command.
MODE_FLAGS = {"-r": "--run", "--run": "--run", "-m": "--multirun", "--multirun": "--multirun",
              "-c": "--cfg", "--cfg": "--cfg", "-i": "--info", "--info": "--info"}


def refuse_two_modes(args: list[str]) -> None:
    """Two of Hydra's mode flags (`-m ... --cfg job`) in one command, refused before Hydra raises."""
    typed = {MODE_FLAGS[flag]: flag for flag in (a.split("=", 1)[0] for a in args) if flag in MODE_FLAGS}
    if len(typed) < 2:
        return
    hint = ("; to see a job's config, drop -m and give each swept key one value"
            if {"--multirun", "--cfg"} <= typed.keys() else "")
    raise UserError(f"{' and '.join(typed.values())}: Hydra takes one of --run, --multirun, --cfg, --info "
                    f"per command{hint}")


def _repeated_from_the_run(message: str, typed: list[str], expanded: list[str]) -> str:
    """Where a bad key came from when the user did not type it: resume= and eval repeat the run's
    own overrides (its .hydra/overrides.yaml) before the typed ones."""
    key = message.split(":", 1)[0].split("=", 1)[0]

    def keys(args: list[str]) -> set[str]:
        return {a.lstrip("+~").split("=", 1)[0] for a in args}

    if key.startswith("hydra.") or key in ("resume", "ckpt_path") or key not in keys(expanded) - keys(typed):
        return ""
    return " (set by the run's own .hydra/overrides.yaml, which this command repeats)"
