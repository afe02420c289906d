"""results.json: the one file per run that sweeps, reports and benchmarks read.

Keys are documented in the README ("results.json"); add keys, never rename them.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

RESULTS_FILE = "results.json"


def to_number(value: Any) -> Any:
    """Tensors and numpy scalars as plain Python numbers, for JSON."""
    return value.item() if hasattr(value, "item") else value


def write_atomic(path: Path, write: Callable[[IO[Any]], Any], binary: bool = False) -> None:
    """Call `write(handle)` on a temp file next to `path`, then rename it into place, so that
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


def strict_json(value: Any, path: str = "", found: list[str] | None = None) -> Any:
    """`value` with every NaN/inf float replaced by None (JSON has no such numbers); the dotted
    keys replaced are appended to `found`."""
    if isinstance(value, float) and not math.isfinite(value):
        if found is not None:
            found.append(path)
        return None
    if isinstance(value, Mapping):
        return {k: strict_json(v, f"{path}.{k}" if path else str(k), found) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    return value


def write_json_atomic(path: Path, payload: Any) -> None:
    """Strict JSON (allow_nan=False): a non-finite number is written as null, and its key is
    listed under `non_finite`."""
    found: list[str] = []
    clean = strict_json(payload, found=found)
    if found and isinstance(clean, dict):
        clean["non_finite"] = sorted(set(clean.get("non_finite") or []) | set(found))

    def write(handle: IO[str]) -> None:
        json.dump(clean, handle, indent=2, sort_keys=True, default=str, allow_nan=False)
        handle.write("\n")

    write_atomic(path, write)


def read_results(run_dir: str | Path) -> dict[str, Any]:
    """A run's results.json."""
    return json.loads((Path(run_dir) / RESULTS_FILE).read_text())
