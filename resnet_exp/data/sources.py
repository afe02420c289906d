"""Where a dataset comes from: `data_dir`, the system copy (Fashion-MNIST), else torchvision's download
(a file appears under its final name only complete and verified); and the cache of its decoded arrays,
`<data_dir>/<name>.uint8.pt`, loaded memory-mapped with `weights_only=True`, rebuilt when a source changes."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.datasets import FashionMNIST
from torchvision.datasets.utils import check_integrity, download_url

from resnet_exp.data import formats
from resnet_exp.data.formats import CIFAR, IDX_FILES
from resnet_exp.data.specs import Arrays
from resnet_exp.errors import DataError, first_line

log = logging.getLogger(__name__)

SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_TIMEOUT_S = 30  # torchvision's download takes none: a silent network would hang the run
# (url, file name, md5) of what a download fetches: torchvision's sources.
DOWNLOADS = {
    **{name: [(cls.url, cls.filename, cls.tgz_md5)] for name, cls in CIFAR.items()},
    "fashion_mnist": [(FashionMNIST.mirrors[0] + fname, fname, md5) for fname, md5 in FashionMNIST.resources],
}
CACHE_VERSION = 1
_ARRAYS = ("train_x", "train_y", "test_x", "test_y")


@dataclass
class Source:
    """A complete local copy: what to read, and the files it consists of."""

    description: str
    files: list[Path]
    read: Callable[[], Arrays]


def check_data_dir(data_dir: Path) -> None:
    if data_dir.exists() and not data_dir.is_dir():
        raise DataError(f"data.data_dir={data_dir}: is a file, not a directory; point data.data_dir at a folder")


def ensure_writable(folder: Path) -> None:
    check_data_dir(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"data.data_dir={folder}: cannot create it ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(f"data.data_dir={folder}: not writable; choose a writable data.data_dir")


def _idx_in(folder: Path) -> dict[str, Path] | None:
    """The four idx files in `folder` (each `.gz` or raw), or None unless all are there."""
    found = {key: next((c for c in (folder / f"{base}.gz", folder / base) if c.is_file()), None)
             for key, base in IDX_FILES.items()}
    return found if all(found.values()) else None


def find_local(name: str, data_dir: Path) -> tuple[list[Path], Source | None]:
    """The first complete local copy, and every path looked at."""
    if name in CIFAR:  # the extracted folder, then the archive
        folder, archive = data_dir / CIFAR[name].base_folder, data_dir / CIFAR[name].filename
        files = [folder / f for f in formats.cifar_files(name)]
        if all(f.is_file() for f in files):
            return [folder, archive], Source(str(folder), files, lambda: formats.read_cifar_folder(name, folder))
        if archive.is_file():
            return [folder, archive], Source(str(archive), [archive], lambda: formats.read_cifar_archive(name, archive))
        if any(f.exists() for f in files):
            missing = next(f for f in files if not f.is_file())
            raise DataError(f"{folder}: incomplete, {missing.name} is missing; put the whole folder or "
                            f"{archive.name} there")
        return [folder, archive], None
    # Fashion-MNIST: its own layouts, torchvision's, then the system copy.
    folders = [data_dir, data_dir / "fashion-mnist", data_dir / "FashionMNIST" / "raw", SYSTEM_FASHION_MNIST]
    for folder in folders:
        if found := _idx_in(folder):
            return folders, Source(str(folder), list(found.values()), lambda: formats.read_fashion_mnist(found))
    return folders, None


def download(url: str, dest: Path, md5: str) -> None:
    """torchvision's download into a temporary folder beside `dest`, its md5 check, then a rename."""
    ensure_writable(dest.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent))
    previous_timeout = socket.getdefaulttimeout()
    try:
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:
            download_url(url, str(tmp), dest.name)
        except Exception as exc:  # network and disk errors come in many types
            raise DataError(f"download from {url} failed ({type(exc).__name__}: {first_line(exc)})") from None
        if not check_integrity(str(tmp / dest.name), md5):
            raise DataError(f"download from {url} failed: checksum mismatch (expected md5 {md5}); nothing was kept")
        os.replace(tmp / dest.name, dest)
    finally:
        socket.setdefaulttimeout(previous_timeout)
        shutil.rmtree(tmp, ignore_errors=True)


def _download_or_fail(name: str, data_dir: Path, looked: list[Path], download_ok: bool) -> Source:
    """A fresh download, else one DataError saying where we looked, why the download failed, the remedies."""
    failure = "download not attempted (data.download=false)"
    if download_ok:
        existed = data_dir.exists()
        try:
            for url, fname, md5 in DOWNLOADS[name]:
                if not (data_dir / fname).is_file():
                    download(url, data_dir / fname, md5)
            return find_local(name, data_dir)[1]
        except DataError as exc:
            failure = str(exc)
            if not existed and data_dir.is_dir() and not any(data_dir.iterdir()):
                data_dir.rmdir()  # leave no trace of a failed attempt
    if name in CIFAR:
        put = f"put {CIFAR[name].filename} (or the extracted {CIFAR[name].base_folder}/) in {data_dir}"
        other = f"copy {data_dir} from a machine where the download works"
    else:
        put = f"put the four Fashion-MNIST idx files (train/t10k-images/labels, .gz or raw) in {data_dir}"
        other = "install the Debian/Ubuntu package dataset-fashion-mnist"
    urls = [url for url, _, _ in DOWNLOADS[name]]
    raise DataError(f"{name}: no copy of the dataset found. Looked in: {', '.join(map(str, looked))}. {failure}. "
                    f"Remedies: (1) {put} or set data.data_dir; (2) run with network access and data.download=true "
                    f"(downloads {urls[0]}{' ...' if len(urls) > 1 else ''}); (3) {other}.")


def _fingerprint(files: list[Path]) -> list[list]:
    return [[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def read_cache(name: str, path: Path, files: list[Path] | None, quiet: bool = False) -> Arrays | None:
    """The cached arrays if the cache is intact, valid and made from `files` (None: any will do); else None."""
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


def write_cache(path: Path, arrays: Arrays, files: list[Path]) -> None:
    """Save beside `path` under a temporary name, then rename: readers never see a partial cache."""
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
        Path(tmp_name).unlink(missing_ok=True)  # gone after the rename; else a partial file


def _located(name: str, data_dir: Path | str) -> tuple[Path, list[Path], Source | None]:
    """The data_dir checked and expanded, the paths looked at, and the first complete local copy."""
    data_dir = Path(data_dir).expanduser()
    check_data_dir(data_dir)
    return data_dir, *find_local(name, data_dir)


def load(name: str, data_dir: Path | str, download_ok: bool = True) -> Arrays:
    """Find, decode, validate and cache a real dataset; the decoded arrays."""
    data_dir, looked, source = _located(name, data_dir)
    path = data_dir / f"{name}.uint8.pt"
    # Without a source (originals removed after caching) any valid cache is enough.
    if (arrays := read_cache(name, path, source.files if source else None)) is not None:
        return arrays
    source = source or _download_or_fail(name, data_dir, looked, download_ok)
    start = time.perf_counter()
    arrays = source.read()
    log.info("decoded %s from %s in %.1f s; caching it in %s", name, source.description,
             time.perf_counter() - start, path)
    try:
        ensure_writable(path.parent)
    except DataError as exc:
        log.warning("not caching the decoded %s: %s", path.name, exc)
        return arrays
    write_cache(path, arrays, source.files)
    return arrays


def ensure_available(name: str, data_dir: Path | str, download_ok: bool = True) -> None:
    """Raise `load`'s one-line DataError unless it will find a local copy or a cache (else download now)."""
    data_dir, looked, source = _located(name, data_dir)
    if source is None and not (data_dir / f"{name}.uint8.pt").is_file():
        _download_or_fail(name, data_dir, looked, download_ok)


def is_ready(name: str, data_dir: Path | str) -> bool:
    """Cheap check that `load` would be served from an up-to-date, valid cache (a mapped read)."""
    try:
        data_dir, _, source = _located(name, data_dir)
    except DataError:
        return False
    return read_cache(name, data_dir / f"{name}.uint8.pt", source.files if source else None, quiet=True) is not None
