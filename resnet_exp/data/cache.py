"""The decoded uint8 arrays of a dataset, cached as `<data_dir>/<name>.uint8.pt`.

Decoding CIFAR or Fashion-MNIST takes seconds; the cache loads in milliseconds: written atomically,
loaded memory-mapped (pages are read when used) with `weights_only=True` (no code runs). It
remembers the source files it was made from (path, size, mtime), so a changed source rebuilds it,
and it passes the same checks as a fresh decode (`formats.validate_arrays`).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import torch

from resnet_exp.data import formats
from resnet_exp.data.formats import Arrays
from resnet_exp.errors import first_line

log = logging.getLogger(__name__)

CACHE_VERSION = 1
_ARRAYS = ("train_x", "train_y", "test_x", "test_y")


def cache_path(name: str, data_dir: Path) -> Path:
    return data_dir / f"{name}.uint8.pt"


def _fingerprint(files: list[Path]) -> list[list]:
    return [[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def read(name: str, path: Path, files: list[Path] | None, quiet: bool = False) -> Arrays | None:
    """The cached arrays if the cache exists, is intact and valid, and was made from `files` (None:
    the sources are gone, any will do); else None."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        meta = json.loads(saved["meta"])
        if meta.get("version") != CACHE_VERSION or (files is not None and meta.get("files") != _fingerprint(files)):
            return None
        arrays = Arrays(*(saved[key].numpy() for key in _ARRAYS), [str(n) for n in saved["class_names"]])
        formats.validate_arrays(name, arrays, str(path))
        return arrays
    except Exception as exc:  # a damaged cache is only a cache: decode the source again
        if not quiet:
            log.warning("%s: ignoring an unusable cache (%s); decoding the source again", path, first_line(exc))
        return None


def write(path: Path, arrays: Arrays, files: list[Path]) -> None:
    """Save next to `path` under a temporary name, then rename: readers never see a partial cache."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp_name, 0o644)
        torch.save({**{key: torch.from_numpy(getattr(arrays, key)) for key in _ARRAYS},
                    "class_names": list(arrays.class_names),
                    "meta": json.dumps({"version": CACHE_VERSION, "files": _fingerprint(files)})}, tmp_name)
        os.replace(tmp_name, path)
    except (OSError, RuntimeError) as exc:
        log.warning("could not write the cache %s: %s", path, exc)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
