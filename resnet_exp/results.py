"""results.json: the one file per run that sweeps, reports and benchmarks read.

Keys are documented in the README ("results.json"); add keys, never rename them.
"""

from __future__ import annotations

import json
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


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    def write(handle: IO[str]) -> None:
        json.dump(payload, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")

    write_atomic(path, write)
