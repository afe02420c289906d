"""Readers for the original on-disk formats, validating everything they read.

- CIFAR-10/100 "python version": pickles (written by Python 2, read with `encoding="latin1"`)
  holding `data` uint8 (N, 3072) = 1024 red, 1024 green, 1024 blue values, row-major 32x32, and
  `labels` (CIFAR-10) or `fine_labels` (CIFAR-100); class names in `batches.meta` / `meta`.
  Read from the extracted folder or straight from the .tar.gz (nothing is extracted).
- Fashion-MNIST: big-endian idx files, gzipped or raw.

Every problem raises a one-line `DataError` naming the file. Counts must be the official ones
(50000/10000, 60000/10000) and the content must match the official checksums, unless the test-only
environment variable RESNET_EXP_ALLOW_SMALL_DATASETS=1 is set (then any consistent count passes and
checksums are not compared).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resnet_exp.data.specs import SPECS
from resnet_exp.errors import DataError

SMALL_ENV = "RESNET_EXP_ALLOW_SMALL_DATASETS"


def small_allowed() -> bool:
    return os.environ.get(SMALL_ENV, "") not in ("", "0")


@dataclass
class Arrays:
    """A decoded dataset: uint8 images (N, C, H, W) and int64 labels, official train and test."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    class_names: list[str]


# --- CIFAR -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CifarLayout:
    folder: str
    archive: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: str
    names_key: str
    # md5 of each extracted file, as published with the dataset (torchvision uses the same).
    md5: dict


CIFAR_LAYOUTS = {
    "cifar10": CifarLayout(
        "cifar-10-batches-py", "cifar-10-python.tar.gz",
        tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta", "labels", "label_names",
        {"data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
         "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
         "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e",
         "batches.meta": "5ff9c542aee3614f3951f8cda6e48888"}),
    "cifar100": CifarLayout(
        "cifar-100-python", "cifar-100-python.tar.gz", ("train",), "test", "meta", "fine_labels",
        "fine_label_names",
        {"train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
         "meta": "7973b15100ade9c7d40fb424638fde48"}),
}

# Only what a CIFAR pickle needs: numpy arrays (and the bytes of their buffers). Anything else in a
# "dataset" file (e.g. os.system) is refused instead of executed.
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"), ("__builtin__", "object"),
    ("builtins", "object"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle(raw: bytes, where: str) -> dict:
    try:
        obj = _SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as exc:  # truncated or garbage pickles raise many different types
        raise DataError(f"{where}: not a readable CIFAR pickle, truncated or corrupt "
                        f"({type(exc).__name__}: {_first_line(exc)})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a dict in the CIFAR pickle, found {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no detail"


def _check_md5(raw: bytes, expected: str | None, where: str) -> None:
    if expected is None or small_allowed():
        return
    got = hashlib.md5(raw).hexdigest()
    if got != expected:
        raise DataError(f"{where}: checksum mismatch (md5 {got}, expected {expected}); the file is corrupt "
                        f"or not the original: delete it and provide the original again")


def _cifar_batch(raw: bytes, where: str, label_key: str, num_classes: int,
                 expected: int | None) -> tuple[np.ndarray, np.ndarray]:
    entry = _unpickle(raw, where)
    for key in ("data", label_key):
        if key not in entry:
            raise DataError(f"{where}: CIFAR pickle lacks the key '{key}' (has {sorted(entry)})")
    data = entry["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise DataError(f"{where}: 'data' must be uint8 of shape (N, 3072), found "
                        f"{getattr(data, 'dtype', type(data).__name__)} {shape}")
    try:
        labels = np.asarray(entry[label_key], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{where}: '{label_key}' is not a list of integers") from None
    if labels.shape != (data.shape[0],):
        raise DataError(f"{where}: {data.shape[0]} images but {labels.size} labels")
    if expected is not None and data.shape[0] != expected:
        raise DataError(f"{where}: {data.shape[0]} images, expected {expected} (truncated or not the original)")
    if data.shape[0] == 0:
        raise DataError(f"{where}: holds no images")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise DataError(f"{where}: labels must be in [0, {num_classes - 1}], found "
                        f"{labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels


def _cifar_names(raw: bytes, where: str, key: str, expected: tuple[str, ...]) -> list[str]:
    entry = _unpickle(raw, where)
    if key not in entry:
        raise DataError(f"{where}: CIFAR meta file lacks '{key}' (has {sorted(entry)})")
    names = [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in entry[key]]
    if tuple(names) != expected:
        raise DataError(f"{where}: class names {names[:3]}... do not match the dataset's "
                        f"({list(expected[:3])}...)")
    return names


def _read_cifar_files(name: str, get: Callable[[str], bytes], describe: Callable[[str], str]) -> Arrays:
    spec, layout = SPECS[name], CIFAR_LAYOUTS[name]
    strict = not small_allowed()

    def load(fname: str) -> bytes:
        raw = get(fname)
        _check_md5(raw, layout.md5.get(fname), describe(fname))
        return raw

    names = _cifar_names(load(layout.meta_file), describe(layout.meta_file), layout.names_key, spec.class_names)
    per_train = spec.train_count // len(layout.train_files) if strict else None
    xs, ys = [], []
    for fname in layout.train_files:
        x, y = _cifar_batch(load(fname), describe(fname), layout.label_key, spec.num_classes, per_train)
        xs.append(x)
        ys.append(y)
    test_x, test_y = _cifar_batch(load(layout.test_file), describe(layout.test_file), layout.label_key,
                                  spec.num_classes, spec.test_count if strict else None)
    return Arrays(np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys),
                  np.ascontiguousarray(test_x), test_y, names)


def cifar_files(name: str) -> tuple[str, ...]:
    layout = CIFAR_LAYOUTS[name]
    return (*layout.train_files, layout.test_file, layout.meta_file)


def read_cifar_folder(name: str, folder: Path) -> Arrays:
    """Read the extracted `cifar-10-batches-py/` or `cifar-100-python/` folder."""
    def get(fname: str) -> bytes:
        path = folder / fname
        try:
            return path.read_bytes()
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None

    return _read_cifar_files(name, get, lambda fname: str(folder / fname))


def read_cifar_archive(name: str, archive: Path) -> Arrays:
    """Read `cifar-10-python.tar.gz` / `cifar-100-python.tar.gz` in memory, without extracting it."""
    layout = CIFAR_LAYOUTS[name]
    wanted = {f"{layout.folder}/{f}" for f in cifar_files(name)}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                key = member.name.removeprefix("./")
                if key in wanted and member.isfile():
                    handle = tar.extractfile(member)
                    found[key] = handle.read() if handle else b""
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(f"{archive}: corrupt or truncated archive ({type(exc).__name__}: "
                        f"{_first_line(exc)}); delete it and provide the original again") from None

    def get(fname: str) -> bytes:
        key = f"{layout.folder}/{fname}"
        if key not in found:
            raise DataError(f"{archive}: the archive lacks {key}; delete it and provide the original again")
        return found[key]

    return _read_cifar_files(name, get, lambda fname: f"{archive}:{layout.folder}/{fname}")


# --- idx (Fashion-MNIST) -----------------------------------------------------------------------

IDX_FILES = {
    "train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte",
}
# md5 of the uncompressed idx files (gzip output differs between compressors; the content does not).
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}


def read_idx(path: Path, ndim: int, md5: str | None = None) -> np.ndarray:
    """Read one big-endian idx file of uint8 (gzipped or raw, told apart by the gzip magic)."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read, truncated or corrupt gzip ({type(exc).__name__}: "
                        f"{_first_line(exc)})") from None
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path}: truncated idx file ({len(raw)} bytes, no complete header)")
    zero, dtype_code, dims = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or dims != ndim:
        raise DataError(f"{path}: not a uint8 idx file with {ndim} dimension(s) "
                        f"(magic 0x{raw[:4].hex()}, expected 0x000008{ndim:02x})")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    payload = raw[4 + 4 * ndim:]
    expected = int(np.prod(shape, dtype=np.int64))
    if len(payload) != expected:
        kind = "truncated" if len(payload) < expected else "corrupt (trailing bytes)"
        raise DataError(f"{path}: {kind} idx file: header says {shape}, i.e. {expected} bytes of data, "
                        f"found {len(payload)}")
    _check_md5(raw, md5, str(path))
    return np.frombuffer(payload, dtype=np.uint8).reshape(shape).copy()  # writable, owns its memory


def read_fashion_mnist(paths: dict[str, Path]) -> Arrays:
    """Read the four Fashion-MNIST idx files; `paths` maps train_x/train_y/test_x/test_y to files."""
    spec = SPECS["fashion_mnist"]
    strict = not small_allowed()
    out = {}
    for split, count in (("train", spec.train_count), ("test", spec.test_count)):
        xpath, ypath = paths[f"{split}_x"], paths[f"{split}_y"]
        x = read_idx(xpath, 3, FASHION_MNIST_MD5[IDX_FILES[f"{split}_x"]])
        y = read_idx(ypath, 1, FASHION_MNIST_MD5[IDX_FILES[f"{split}_y"]])
        if x.shape[1:] != (28, 28):
            raise DataError(f"{xpath}: images must be 28x28, found {x.shape[1]}x{x.shape[2]}")
        if strict and x.shape[0] != count:
            raise DataError(f"{xpath}: {x.shape[0]} images, expected {count} (truncated or not the original)")
        if x.shape[0] == 0:
            raise DataError(f"{xpath}: holds no images")
        if y.shape[0] != x.shape[0]:
            raise DataError(f"{ypath}: {y.shape[0]} labels for the {x.shape[0]} images of {xpath.name}")
        if y.max() >= spec.num_classes:
            raise DataError(f"{ypath}: labels must be in [0, {spec.num_classes - 1}], found up to {y.max()}")
        out[f"{split}_x"] = np.ascontiguousarray(x[:, None])
        out[f"{split}_y"] = y.astype(np.int64)
    return Arrays(out["train_x"], out["train_y"], out["test_x"], out["test_y"], list(spec.class_names))


def validate_arrays(name: str, arrays: Arrays, where: str) -> None:
    """Shape/count/label checks of decoded arrays (used on caches)."""
    spec = SPECS[name]
    strict = not small_allowed()
    for split, count in (("train", spec.train_count), ("test", spec.test_count)):
        x, y = getattr(arrays, f"{split}_x"), getattr(arrays, f"{split}_y")
        shape = (spec.in_channels, spec.image_size, spec.image_size)
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != shape or y.shape != (x.shape[0],):
            raise DataError(f"{where}: {split} arrays have the wrong shape {x.shape}/{y.shape}")
        if (strict and x.shape[0] != count) or x.shape[0] == 0:
            raise DataError(f"{where}: {x.shape[0]} {split} images, expected {count}")
        if y.min() < 0 or y.max() >= spec.num_classes:
            raise DataError(f"{where}: {split} labels out of range")
    if tuple(arrays.class_names) != spec.class_names:
        raise DataError(f"{where}: class names do not match the dataset's")
