"""Where a dataset comes from: `data_dir`, then the system copy (Fashion-MNIST), then a download.

The decoded uint8 arrays are cached in `data_dir` as `<name>.uint8.pt` (written atomically, loaded memory-mapped), so
that later runs load in a fraction of a second; the cache remembers which source files it was
made from (path, size, mtime) and is rebuilt when they change.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from resnet_exp.data import formats
from resnet_exp.data.formats import CIFAR_LAYOUTS, IDX_FILES, Arrays
from resnet_exp.errors import DataError

log = logging.getLogger(__name__)

SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
CACHE_VERSION = 1
DOWNLOAD_TIMEOUT_S = 30

# The official mirrors and checksums (the same that torchvision uses).
CIFAR_DOWNLOADS = {
    "cifar10": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),
}
FASHION_MNIST_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_GZ_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}


@dataclass
class Source:
    """A complete local copy: what to read, and the files it consists of."""

    description: str
    files: list[Path]
    read: Callable[[], Arrays]


# --- finding local copies ----------------------------------------------------------------------

def check_data_dir(data_dir: Path) -> None:
    if data_dir.exists() and not data_dir.is_dir():
        raise DataError(f"data.data_dir={data_dir}: is a file, not a directory; "
                        f"point data.data_dir at a folder")


def _cifar_candidates(name: str, data_dir: Path) -> tuple[list[Path], Source | None]:
    layout = CIFAR_LAYOUTS[name]
    folder, archive = data_dir / layout.folder, data_dir / layout.archive
    looked = [folder, archive]
    files = [folder / f for f in formats.cifar_files(name)]
    if folder.is_dir() and all(f.is_file() for f in files):
        return looked, Source(str(folder), files, lambda: formats.read_cifar_folder(name, folder))
    if archive.is_file():
        return looked, Source(str(archive), [archive], lambda: formats.read_cifar_archive(name, archive))
    if folder.is_dir() and any(f.exists() for f in files):
        missing = next(f for f in files if not f.is_file())
        raise DataError(f"{folder}: incomplete, {missing.name} is missing; put the whole folder or "
                        f"{layout.archive} there")
    return looked, None


def _idx_in(folder: Path) -> dict[str, Path] | None:
    found = {}
    for key, base in IDX_FILES.items():
        for candidate in (folder / f"{base}.gz", folder / base):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            return None
    return found


def _fashion_candidates(folders: list[Path]) -> tuple[list[Path], Source | None]:
    for folder in folders:
        found = _idx_in(folder)
        if found:
            return folders, Source(str(folder), list(found.values()),
                                   lambda found=found: formats.read_fashion_mnist(found))
    return folders, None


def fashion_folders(data_dir: Path) -> list[Path]:
    """Where under `data_dir` Fashion-MNIST's idx files are looked for (its own layouts, torchvision's)."""
    return [data_dir, data_dir / "fashion-mnist", data_dir / "FashionMNIST" / "raw"]


def find_local(name: str, data_dir: Path, system_dir: Path | None = None) -> tuple[list[Path], Source | None]:
    """The first complete local copy, and every path looked at."""
    if name in CIFAR_LAYOUTS:
        return _cifar_candidates(name, data_dir)
    folders = fashion_folders(data_dir) + [system_dir or SYSTEM_FASHION_MNIST]
    return _fashion_candidates(folders)


# --- downloading -------------------------------------------------------------------------------

def _fetch(url: str, dest: Path, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Stream `url` into `dest` with a progress bar (tqdm, as torchvision shows it)."""
    from tqdm import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "resnet_exp"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as fh, \
            tqdm(total=response.length, unit="B", unit_scale=True, desc=dest.name.split(".part")[0]) as bar:
        while chunk := response.read(1 << 20):
            fh.write(chunk)
            bar.update(len(chunk))


def download(url: str, dest: Path, md5: str) -> None:
    """Download to a temporary file beside `dest`, verify the md5, then rename: never a half file."""
    from torchvision.datasets.utils import check_integrity

    ensure_writable(dest.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o644)
    try:
        try:
            _fetch(url, tmp)
        except Exception as exc:  # network and disk errors come in many types
            raise DataError(f"download from {url} failed ({type(exc).__name__}: "
                            f"{formats._first_line(exc)})") from None
        if not check_integrity(str(tmp), md5):
            raise DataError(f"download from {url} failed: checksum mismatch (expected md5 {md5}); "
                            f"nothing was kept")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_writable(folder: Path) -> None:
    check_data_dir(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"data.data_dir={folder}: cannot create it ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(f"data.data_dir={folder}: not writable; choose a writable data.data_dir")


def _download(name: str, data_dir: Path) -> Source:
    if name in CIFAR_DOWNLOADS:
        url, md5 = CIFAR_DOWNLOADS[name]
        download(url, data_dir / CIFAR_LAYOUTS[name].archive, md5)
        source = _cifar_candidates(name, data_dir)[1]
    else:
        for fname, md5 in FASHION_MNIST_GZ_MD5.items():
            if not (data_dir / fname).is_file():
                download(FASHION_MNIST_MIRROR + fname, data_dir / fname, md5)
        source = _fashion_candidates([data_dir])[1]
    assert source is not None
    return source


def download_urls(name: str) -> list[str]:
    if name in CIFAR_DOWNLOADS:
        return [CIFAR_DOWNLOADS[name][0]]
    return [FASHION_MNIST_MIRROR + f for f in FASHION_MNIST_GZ_MD5]


def _remedies(name: str, data_dir: Path) -> str:
    if name in CIFAR_LAYOUTS:
        layout = CIFAR_LAYOUTS[name]
        put = f"put {layout.archive} (or the extracted {layout.folder}/) in {data_dir} or set data.data_dir"
        other = f"copy {data_dir} from a machine where the download works"
    else:
        put = (f"put the four Fashion-MNIST idx files (train/t10k-images/labels, .gz or raw) in {data_dir} "
               f"or set data.data_dir")
        other = "install the Debian/Ubuntu package dataset-fashion-mnist"
    return (f"Remedies: (1) {put}; (2) run with network access and data.download=true "
            f"(downloads {' '.join(download_urls(name)[:1])}{' ...' if name not in CIFAR_LAYOUTS else ''}); "
            f"(3) {other}.")


def resolve(name: str, data_dir: Path, download_ok: bool) -> Source:
    """The source to read: local copy, else a fresh download, else one DataError saying everything."""
    check_data_dir(data_dir)
    looked, source = find_local(name, data_dir)
    if source is not None:
        return source
    if download_ok:
        existed = data_dir.exists()
        try:
            return _download(name, data_dir)
        except DataError as exc:
            failure = str(exc)
            if not existed and data_dir.is_dir() and not any(data_dir.iterdir()):
                data_dir.rmdir()  # leave no trace of a failed attempt
    else:
        failure = "download not attempted (data.download=false)"
    where = ", ".join(str(p) for p in looked)
    raise DataError(f"{name}: no copy of the dataset found. Looked in: {where}. {failure}. "
                    f"{_remedies(name, data_dir)}")


# --- the decoded cache -------------------------------------------------------------------------

def cache_path(name: str, data_dir: Path) -> Path:
    return data_dir / f"{name}.uint8.pt"


def _fingerprint(files: list[Path]) -> list:
    out = []
    for f in files:
        st = f.stat()
        out.append([str(f.resolve()), st.st_size, st.st_mtime_ns])
    return out


def _cache_meta(source: Source | None) -> dict:
    return {"version": CACHE_VERSION, "small": formats.small_allowed(),
            "files": _fingerprint(source.files) if source else None}


def _meta_matches(meta: dict, source: Source | None) -> bool:
    expected = _cache_meta(source)
    if meta.get("version") != CACHE_VERSION or (meta.get("small") and not expected["small"]):
        return False  # another format, or made from test-sized files that strict mode must not trust
    return source is None or meta.get("files") == expected["files"]


def _open_cache(path: Path) -> dict:
    # Memory-mapped: loading costs milliseconds, pages are read when used. weights_only: no code runs.
    return torch.load(path, map_location="cpu", mmap=True, weights_only=True)


def _read_cache(name: str, path: Path, source: Source | None) -> Arrays | None:
    """The cached arrays if the cache exists, is intact and matches `source`; else None."""
    if not path.is_file():
        return None
    try:
        z = _open_cache(path)
        if not _meta_matches(json.loads(z["meta"]), source):
            return None
        arrays = Arrays(z["train_x"].numpy(), z["train_y"].numpy(), z["test_x"].numpy(), z["test_y"].numpy(),
                        [str(n) for n in z["class_names"]])
        formats.validate_arrays(name, arrays, str(path))
        return arrays
    except Exception as exc:  # a damaged cache is only a cache: decode the source again
        log.warning("%s: ignoring an unusable cache (%s); decoding the source again", path,
                    formats._first_line(exc))
        return None


def _write_cache(path: Path, arrays: Arrays, source: Source) -> None:
    try:
        ensure_writable(path.parent)
    except DataError as exc:
        log.warning("not caching the decoded %s: %s", path.name, exc)
        return
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp_name, 0o644)
        torch.save({"train_x": torch.from_numpy(arrays.train_x), "train_y": torch.from_numpy(arrays.train_y),
                    "test_x": torch.from_numpy(arrays.test_x), "test_y": torch.from_numpy(arrays.test_y),
                    "class_names": list(arrays.class_names), "meta": json.dumps(_cache_meta(source))}, tmp_name)
        os.replace(tmp_name, path)
    except (OSError, RuntimeError) as exc:
        log.warning("could not write the cache %s: %s", path, exc)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def load(name: str, data_dir: Path | str, download_ok: bool = True) -> Arrays:
    """Find, decode, validate and cache a real dataset; the decoded arrays."""
    data_dir = Path(data_dir).expanduser()
    check_data_dir(data_dir)
    cache = cache_path(name, data_dir)
    looked, source = find_local(name, data_dir)
    if source is None and cache.is_file():
        arrays = _read_cache(name, cache, None)  # originals removed after caching: the cache is enough
        if arrays is not None:
            return arrays
    if source is None:
        source = resolve(name, data_dir, download_ok)
    arrays = _read_cache(name, cache, source)
    if arrays is not None:
        return arrays
    start = time.perf_counter()
    arrays = source.read()
    log.info("decoded %s from %s in %.1f s; caching it in %s", name, source.description,
             time.perf_counter() - start, cache)
    _write_cache(cache, arrays, source)
    return arrays


def is_ready(name: str, data_dir: Path | str) -> bool:
    """Cheap check that `load` would be served from an up-to-date cache (stat calls + a mapped read)."""
    data_dir = Path(data_dir).expanduser()
    cache = cache_path(name, data_dir)
    if not cache.is_file():
        return False
    try:
        _, source = find_local(name, data_dir)
        return _meta_matches(json.loads(_open_cache(cache)["meta"]), source)
    except Exception:
        return False
