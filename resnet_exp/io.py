"""The files of a run folder: results.json (keys are only ever added, never renamed), atomic writes (CSV too),
Markdown tables, and the checkpoints a run leaves. torch is imported only where checkpoints are read: reports
start quickly."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from resnet_exp.errors import UserError, first_line, shortened

RESULTS_FILE = "results.json"
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
NOT_A_RUN_CHECKPOINT = "pass a .ckpt file written by a run"
# Keys a Lightning checkpoint needs to continue training from (weights-only checkpoints lack them).
TRAINING_STATE_KEYS = ("epoch", "global_step", "loops", "optimizer_states", "lr_schedulers")
# Optimizer settings that choose the implementation, not the algorithm: they may differ on resume.
IMPLEMENTATION_KEYS = ("foreach", "fused", "capturable", "differentiable")


def is_run_dir(path: Path) -> bool:
    """A run folder: one that Hydra set up for a job (its command line is in .hydra/)."""
    return (Path(path) / ".hydra" / "overrides.yaml").is_file()


def run_choices(run_dir: Path) -> dict[str, Any]:
    """The config group choices of a run folder's job (its .hydra/hydra.yaml); empty when unreadable."""
    import yaml

    try:
        saved = yaml.safe_load((Path(run_dir) / ".hydra" / "hydra.yaml").read_text())
        return dict(saved["hydra"]["runtime"]["choices"])
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return {}


def is_rank_zero(on_node: bool = False) -> bool:
    """Whether this is the job's first process (with `on_node`: its machine's), by Lightning's rank variables
    or SLURM's task ids: the one that writes the run's shared files."""
    keys = ("LOCAL_RANK", "SLURM_LOCALID") if on_node else ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")
    return all(os.environ.get(key, "0") == "0" for key in keys)


def rounded(value: float | None, digits: int = 4) -> float | None:
    """A float rounded for files and tables; None stays None."""
    return None if value is None else round(float(value), digits)


def to_number(value: Any) -> Any:
    """Tensors and numpy scalars as plain Python numbers, for JSON."""
    return value.item() if hasattr(value, "item") else value


def write_atomic(path: Path, write: Callable[[IO[Any]], Any], binary: bool = False) -> None:
    """`write(handle)` into a temp file next to `path` (`.<name>.<random>.tmp`), then renamed into place:
    readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"newline": ""})) as handle:
            write(handle)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide results from other users of a shared box
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]], line_end: str = "\r\n") -> None:
    """A CSV file with a header row, written atomically (None: an empty cell). Line ends are the csv module's
    CRLF unless `line_end` says otherwise: each file keeps the ones it always had."""
    write_atomic(path, lambda handle: csv.writer(handle, lineterminator=line_end).writerows([header, *rows]))


def md_row(cells: Iterable[object]) -> str:
    """A Markdown table row, each cell's text kept in its cell."""
    return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |\n"


def md_table(header: Sequence[object], align: str, rows: Iterable[Iterable[object]]) -> str:
    """A Markdown table: the header, its alignment row (`l` or `r` for each column), the rows."""
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|\n"
    return md_row(header) + rule + "".join(map(md_row, rows))


def strict_json(value: Any, found: list[str], path: str = "") -> Any:
    """`value` with every NaN/inf float replaced by None, the dotted keys replaced appended to `found`."""
    if isinstance(value, float) and not math.isfinite(value):
        found.append(path)
        return None
    if isinstance(value, Mapping):
        return {k: strict_json(v, found, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v, found, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def write_json_atomic(path: Path, payload: Any) -> None:
    """Strict JSON: a non-finite number is written as null, and its key listed under `non_finite`."""
    found: list[str] = []
    clean = strict_json(payload, found)
    if found and isinstance(clean, dict):
        clean["non_finite"] = sorted(set(clean.get("non_finite") or []) | set(found))
    text = json.dumps(clean, indent=2, sort_keys=True, default=str, allow_nan=False) + "\n"
    write_atomic(path, lambda handle: handle.write(text))


def read_results(run_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / RESULTS_FILE).read_text())


def load_header(path: str | Path) -> dict:
    """A checkpoint's dict with its tensors memory-mapped (only headers are read, not weights)."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def load_problem(exc: BaseException) -> str:
    """Why torch.load refused a file, in a few words: the object a weights-only load refuses, else the
    error's first line (without terminal escape codes)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    refused = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if refused:
        return f"it holds a Python object, {refused.group(1)}, that loading with weights_only=True refuses"
    return shortened(first_line(text), 160)


def readable_checkpoint(path: str | Path, key: str = "ckpt_path") -> dict:
    """`load_header(path)`, or a one-line UserError naming the file when it is not a checkpoint."""
    try:
        saved = load_header(path)
    except FileNotFoundError:
        raise UserError(f"{key}={path}: no such file") from None
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for junk
        raise UserError(f"{path}: not a readable checkpoint ({load_problem(exc)}); {NOT_A_RUN_CHECKPOINT}") from None
    if not isinstance(saved, dict) or "state_dict" not in saved:
        what = (f"a {type(saved).__name__}, not a checkpoint's dict" if not isinstance(saved, dict)
                else "no state_dict in it: a bare model state_dict, not a Lightning checkpoint?")
        raise UserError(f"{path}: not a readable checkpoint ({what}); {NOT_A_RUN_CHECKPOINT}")
    return saved


def newest_loadable(folder: Path) -> Path | None:
    """The checkpoint in `folder` that got furthest (by step, then epoch; `last.ckpt` wins a tie) among
    those that load: one cut short by a crash is skipped."""
    best: tuple[tuple[int, int, bool], Path] | None = None
    for path in sorted(folder.glob("*.ckpt")):
        try:
            saved = load_header(path)
            rank = (int(saved["global_step"]), int(saved["epoch"]), path.name == "last.ckpt")
        except Exception as exc:  # printed: logging is not set up while the command line is expanded
            print(f"warning: skipping {path}: not a readable checkpoint ({load_problem(exc)})", file=sys.stderr)
            continue
        if best is None or rank > best[0]:
            best = (rank, path)
    return best[1] if best else None


def remove_temp_files(folder: Path) -> None:
    """Delete the temp files of `write_atomic` left by a process killed while writing a checkpoint."""
    for path in folder.glob(".*.tmp"):
        path.unlink(missing_ok=True)


def _more(names: list[str]) -> str:
    return f" (and {len(names) - 1} more)" if len(names) > 1 else ""


def check_checkpoint_fits(checkpoint: str, state: Mapping[str, Any], arch: str, key: str = "ckpt_path") -> None:
    """Fail in one line unless the checkpoint is a Lightning checkpoint whose weights are exactly those of
    the model built from the config (`state`): same names, same shapes, tensors only."""
    import torch

    saved = readable_checkpoint(checkpoint, key)
    weights = saved["state_dict"]
    if "pytorch-lightning_version" not in saved or not isinstance(weights, Mapping):
        raise UserError(f"{key}={checkpoint}: not a Lightning checkpoint (no pytorch-lightning_version, or "
                        f"no mapping of weights in its state_dict); {NOT_A_RUN_CHECKPOINT}")
    odd = [name for name, value in weights.items() if not isinstance(value, torch.Tensor)]
    if odd:
        raise UserError(f"{key}={checkpoint}: state_dict entry {odd[0]!r} is a {type(weights[odd[0]]).__name__}, "
                        f"not a tensor{_more(odd)}; {NOT_A_RUN_CHECKPOINT}")
    missing, unexpected = sorted(set(state) - set(weights)), sorted(set(weights) - set(state))
    misfit = f"{key}={checkpoint}: does not fit arch={arch}: "
    advice = "choose the arch the checkpoint was trained with"
    if missing:
        raise UserError(f"{misfit}{missing[0]} is not in it{_more(missing)}; {advice}")
    if unexpected:
        raise UserError(f"{misfit}it holds {unexpected[0]}{_more(unexpected)}, which this net has not (a deeper or "
                        f"other net?); {advice}")
    for name, tensor in state.items():
        if tuple(weights[name].shape) != tuple(tensor.shape):
            raise UserError(f"{misfit}{name} is {list(weights[name].shape)} there, {list(tensor.shape)} here "
                            f"(a wider or narrower net?); {advice}")


def _public(state: Mapping[str, Any]) -> set[str]:
    return {k for k in state if isinstance(k, str) and not k.startswith("_")}


def check_training_state_fits(checkpoint: str, optimizer: Mapping[str, Any], scheduler: Mapping[str, Any] | None,
                              choices: Mapping[str, str], continues_plan: bool) -> None:
    """Fail in one line if the checkpoint cannot continue training here: no training state, or an optimizer or
    scheduler state (`optimizer`, `scheduler`: a fresh fit's) of another kind. `continues_plan`: this run's
    schedule can follow a re-planned one (schedules.Reannealed, whose state holds its `plan`)."""
    saved = load_header(checkpoint)
    fresh = ("; resume with the run's own {0}, or start a new run from the weights alone with "
             f"init_weights={checkpoint}")
    lacking = [k for k in TRAINING_STATE_KEYS if k not in saved]
    if lacking:
        raise UserError(f"ckpt_path={checkpoint}: holds no training state (no {lacking[0]}); it can be evaluated, "
                        f"or start a new run from its weights with init_weights={checkpoint}")
    # The scheduler first: it adds keys of its own to the optimizer's parameter groups.
    where = f"ckpt_path={checkpoint}: its learning-rate schedule does not fit scheduler={choices.get('scheduler')}"
    schedulers = saved["lr_schedulers"]
    if len(schedulers) != (scheduler is not None):
        what = "a schedule there, a constant rate here" if schedulers else "a constant rate there, a schedule here"
        raise UserError(f"{where} ({what})" + fresh.format("scheduler"))
    there, here = (_public(schedulers[0]), _public(scheduler)) if scheduler is not None else ((), ())
    if there != here and not ("plan" in schedulers[0] and continues_plan):
        raise UserError(f"{where} (another scheduler or warm-up: the checkpoint's state has "
                        f"{', '.join(sorted(there))}; this run's has {', '.join(sorted(here))})"
                        + fresh.format("scheduler"))
    where = f"ckpt_path={checkpoint}: its optimizer state does not fit optimizer={choices.get('optimizer')}"
    states = saved["optimizer_states"]
    groups, ours = (states[0]["param_groups"] if len(states) == 1 else []), optimizer["param_groups"]
    if len(groups) != len(ours):
        raise UserError(f"{where} ({len(groups)} parameter groups there, {len(ours)} here: "
                        "module.decay_norm_and_bias?)" + fresh.format("module and optimizer settings"))
    for there, here in zip(groups, ours):
        lacks, other = sorted(set(here) - set(there)), sorted(set(there) - set(here))
        if lacks:
            raise UserError(f"{where} (another optimizer: it has {', '.join(other) or 'none'} where this one "
                            f"needs {', '.join(lacks)})" + fresh.format("optimizer"))
        switched = [k for k, v in here.items() if isinstance(v, bool) and k not in IMPLEMENTATION_KEYS
                    and there.get(k) != v]
        if switched:
            k = switched[0]
            raise UserError(f"{where} ({k}={there.get(k)} there, {here[k]} here)" + fresh.format("optimizer"))
