"""Run a Hydra entry point so that bad input ends in one line on stderr (HYDRA_FULL_ERROR=1 lets Hydra's exceptions
through to be summarised), not a traceback; a bug keeps its traceback, and with RESNET_EXP_DEBUG=1 a user error."""

from __future__ import annotations

import difflib
import errno
import io
import logging
import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable
from typing import NoReturn, TextIO

from hydra import errors as hydra_errors
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from resnet_exp.app.arguments import RESUME_KEYS, key_of
from resnet_exp.app.run_dir import note_existing_folders, refuse_existing_runs
from resnet_exp.app.signals import TERMINATED_EXIT_CODE, sigterm_raises
from resnet_exp.config import CONF_DIR
from resnet_exp.errors import Terminated, UserError, first_line

USER_ERROR_EXIT_CODE = 2
MODE_FLAGS = {"-r": "--run", "--run": "--run", "-m": "--multirun", "--multirun": "--multirun",
              "-c": "--cfg", "--cfg": "--cfg", "-i": "--info", "--info": "--info"}


def _omegaconf_problem(exc: OmegaConfBaseException, override: str) -> str:
    key = exc.full_key or override
    unknown = isinstance(exc, (ConfigKeyError, ConfigAttributeError))
    group = str(override or key).split(".", 1)[0]
    if unknown and "." not in str(exc.full_key or exc.key) and (CONF_DIR / group).is_dir():  # `~group` removed it?
        return (f"{override or key}: the {group} group has no option chosen (removed with ~{group}?); "
                f"pick one with {group}=NAME")
    if unknown and isinstance(exc.parent_node, DictConfig):
        known = sorted(str(k) for k in exc.parent_node.keys() if not str(k).startswith("_"))
        group = "/".join(str(key).split(".")[:-1])  # a key of an optional group that is off (null)?
        if not known and "/" in group and (CONF_DIR / group).is_dir():
            options = ", ".join(sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")))
            return f"{key}: {group} is off; turn it on first with {group}=NAME (options: {options})"
        hint = "".join(f"did you mean {guess}? " for guess in difflib.get_close_matches(str(exc.key), known, n=1))
        return f"{key}: unknown key; {hint}known keys here: {', '.join(known)} (add a new one with +{key}=...)"
    return f"{key}: {first_line(str(exc))}"


def describe_user_error(exc: BaseException) -> str | None:
    """The one-line description of an error the user caused, or None for a bug."""
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "no space left on the device" if exc.errno == errno.ENOSPC else "disk quota exceeded"
        return (f"paths.log_dir: {what} while writing {exc.filename or 'a run file'}; free some space there, "
                "or put runs on another disk with paths.log_dir=<folder> (the run can be resumed with resume=)")
    if isinstance(exc, hydra_errors.MissingConfigException):
        group, _, choice = (exc.missing_cfg_file or "").rpartition("/")
        if not group:
            return first_line(str(exc))
        return f"{group}={choice}: no such option; choose one of: {', '.join(sorted(exc.options or []))}"
    if isinstance(exc, hydra_errors.OverrideParseException):
        override = first_line(str(exc)).split(": ", 1)[-1]
        key, _, value = override.partition("=")
        return (f"{override}: Hydra cannot read this value as typed (spaces, commas, quotes, brackets and "
                f"non-ASCII letters need quotes); type it as \"{key}='{value}'\"")
    if isinstance(exc, hydra_errors.InstantiationException):
        cause = exc.__cause__
        if isinstance(cause, UserError):
            # The target's own message names its key without the group: Hydra ends with `full_key: <group>`.
            last = str(exc).strip().splitlines()[-1]
            group = last.split(": ", 1)[1] if last.startswith("full_key: ") else ""
            return str(cause) if not group or str(cause).startswith(f"{group}.") else f"{group}.{cause}"
        # A target rejecting its arguments is the user's doing; anything else is a bug.
        if not isinstance(cause, (ValueError, TypeError)) and type(cause).__name__ != "MisconfigurationException":
            return None
        return f"{first_line(str(exc))} {type(cause).__name__}: {first_line(str(cause))}"
    if isinstance(exc, hydra_errors.ConfigCompositionException):
        if (text := str(exc)).startswith("Ambiguous value for argument"):
            key, _, value = (override := text.split("'")[1]).partition("=")
            return (f"{override}: a comma separates sweep values; to keep it one value quote it "
                    f"(\"{key}='{value}'\"), write [a,b] for a list, or add -m to sweep")
        # `experiment=quickstart optimizer=adam`: a recipe sets a key that another chosen option has not.
        source, key = re.match(r"In '([\w/]+)/([\w.-]+)': ConfigKeyError", text), re.search(r"full_key: ([\w.]+)", text)
        if source and key and (group := key.group(1).split(".", 1)[0]) == source.group(1):  # its own schema's?
            return f"{group}={source.group(2)}: its file sets {key.group(1)}, which the {group} schema has no key for"
        if source and key:
            return (f"{source.group(1)}={source.group(2)}: sets {key.group(1)}, which the {group} option you chose "
                    f"does not have; keep the {source.group(1)}'s {group}, or pick one that has that key")
        if isinstance(exc.__cause__, OmegaConfBaseException):
            return _omegaconf_problem(exc.__cause__, first_line(text).split("'")[1] if "'" in text else "")
    if isinstance(exc, hydra_errors.CompactHydraException):
        return first_line(str(exc))
    if isinstance(exc, OmegaConfBaseException):
        return _omegaconf_problem(exc, "")
    return None


def exit_on_user_error(exc: Exception) -> NoReturn:
    """For a Hydra callback (Hydra makes its exceptions warnings): a user error exits 2 with its one line."""
    message = describe_user_error(exc)
    if message is None:
        raise exc
    if os.environ.get("RESNET_EXP_DEBUG") == "1":
        traceback.print_exception(exc)
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(USER_ERROR_EXIT_CODE) from None


class _WithoutHydraJobBanner(io.TextIOBase):
    """stderr minus Hydra's 'Error executing job with overrides' line (in a single run, the command line)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.flush, self.fileno, self.isatty = stream, stream.flush, stream.fileno, stream.isatty

    def write(self, text: str) -> int:
        if not text.startswith("Error executing job with overrides:"):
            self.stream.write(text)
        return len(text)


def route_lightning_logs_to_hydra() -> None:
    """Lightning's loggers to Hydra's handlers (console, the job's log), not a stderr handler of their own."""
    for name in ("lightning_fabric", "pytorch_lightning", "lightning"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


def run_hydra_app(app: Callable[[], object], expand_args: Callable[[list[str]], list[str]] | None = None) -> None:
    """Call a @hydra.main function after `expand_args` (`resume=`); user errors exit 2, a SIGTERM 143, in one line."""
    debug = os.environ.get("RESNET_EXP_DEBUG") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    # Silence notices a user can do nothing about: Lightning's tips advertising its cloud packages (no option turns
    # them off), torch's pytree FutureWarning about Lightning's own use of it.
    tip = "💡 Tip:"
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(lambda r: not r.getMessage().startswith(tip))
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"pytorch_lightning\.utilities\._pytree")
    stderr, typed = sys.stderr, sys.argv[1:]
    if not any(arg in ("-m", "--multirun") for arg in typed):
        sys.stderr = _WithoutHydraJobBanner(stderr)
    try:
        with sigterm_raises():
            modes = {MODE_FLAGS[flag]: flag for flag in (a.split("=", 1)[0] for a in typed) if flag in MODE_FLAGS}
            if len(modes) > 1:  # refused before Hydra raises
                hint = ("; to see a job's config, drop -m and give each swept key one value"
                        if {"--multirun", "--cfg"} <= modes.keys() else "")
                raise UserError(f"{' and '.join(modes.values())}: Hydra takes one of --run, --multirun, --cfg, --info "
                                f"per command{hint}")
            refuse_existing_runs(typed)
            if expand_args is not None:
                sys.argv[1:] = expand_args(sys.argv[1:])
            note_existing_folders(sys.argv[1:])
            try:
                app()
            except SystemExit:  # Hydra's --help / --cfg exit by themselves: flush while we can catch it
                sys.stdout.flush()
                raise
            sys.stdout.flush()
    except BrokenPipeError:  # the reader of our output went away (`--help | head`): stop without a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python flushes stdout again at exit
        sys.exit(1)
    except Exception as exc:
        if (terminated := Terminated.behind(exc)) is not None:
            print(f"error: {terminated}", file=stderr)
            sys.exit(TERMINATED_EXIT_CODE)
        message = describe_user_error(exc)
        if message is None or debug:
            raise
        # A bad key the user did not type: resume= and eval repeat the run's own overrides before the typed ones.
        key = message.split(":", 1)[0].split("=", 1)[0]
        repeated = not key.startswith("hydra.") and key not in RESUME_KEYS and key in (
            {key_of(a) for a in sys.argv[1:]} - {key_of(a) for a in typed})
        note = " (set by the run's own .hydra/overrides.yaml, which this command repeats)" if repeated else ""
        print(f"error: {message}{note}", file=stderr)
        sys.exit(USER_ERROR_EXIT_CODE)
    finally:
        sys.stderr = stderr

