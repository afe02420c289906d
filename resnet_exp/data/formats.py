"""Readers of the original on-disk formats on top of torchvision's (layouts, md5s, gzip, the idx reader), adding
a CIFAR reader that builds numpy arrays only (torchvision's `pickle.load` of a tampered file could run code) and
checks that turn every bad file into a one-line `DataError` naming it. A dataset in `OFFICIAL` must have the
official counts and every file its published md5."""

from __future__ import annotations

import hashlib
import io
import pickle
import struct
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from torchvision.datasets import CIFAR10, CIFAR100
from torchvision.datasets.mnist import read_image_file, read_label_file
from torchvision.datasets.utils import extract_archive

from resnet_exp.data.specs import SPECS, Arrays
from resnet_exp.errors import DataError, first_line

CIFAR = {"cifar10": CIFAR10, "cifar100": CIFAR100}  # torchvision's: folder, archive, URL, md5s
CIFAR_LABEL_KEY = {"cifar10": "labels", "cifar100": "fine_labels"}
IDX_FILES = {"train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
             "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte"}
# Of the uncompressed files: the Debian package's .gz files are not the mirror's, the content is.
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}


def cifar_files(name: str) -> list[str]:
    """The files of an extracted CIFAR folder: train batches, test batch, meta."""
    cls = CIFAR[name]
    return [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]


# The published md5 of every file, per dataset (CIFAR: torchvision's table).
OFFICIAL: dict[str, dict[str, str]] = {
    **{name: {**dict(cls.train_list + cls.test_list), cls.meta["filename"]: cls.meta["md5"]}
       for name, cls in CIFAR.items()},
    "fashion_mnist": FASHION_MNIST_MD5,
}


def _check_md5(data: bytes, expected: str | None, where: str) -> None:
    if expected is not None and (got := hashlib.md5(data, usedforsecurity=False).hexdigest()) != expected:
        raise DataError(f"{where}: checksum mismatch (md5 {got}, expected {expected}); the file is corrupt "
                        f"or not the original: delete it and provide the original again")


def _expected_count(name: str, split: str, files: int = 1) -> int | None:
    return getattr(SPECS[name], f"{split}_count") // files if name in OFFICIAL else None


def check_split(name: str, x: np.ndarray, y: np.ndarray, where: str, expected: int | None,
                labels_where: str | None = None) -> None:
    """What every decoded split passes, fresh or cached: shape, one label each, count, label range."""
    spec, labels_where = SPECS[name], labels_where or where
    shape = (spec.in_channels, spec.image_size, spec.image_size)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != shape:
        raise DataError(f"{where}: images must be uint8 of shape (N, {', '.join(map(str, shape))}), "
                        f"found {x.dtype} {x.shape}")
    if y.shape != (x.shape[0],):
        raise DataError(f"{labels_where}: {y.size} labels for the {x.shape[0]} images")
    if expected is not None and x.shape[0] != expected:
        raise DataError(f"{where}: {x.shape[0]} images, expected {expected} (truncated or not the original)")
    if x.shape[0] == 0:
        raise DataError(f"{where}: holds no images")
    if y.min() < 0 or y.max() >= spec.num_classes:
        raise DataError(f"{labels_where}: labels must be in [0, {spec.num_classes - 1}], found {y.min()}..{y.max()}")


def validate_arrays(name: str, arrays: Arrays, where: str) -> None:
    """The checks of `check_split` on both splits, and the class names (used on caches)."""
    for split in ("train", "test"):
        check_split(name, getattr(arrays, f"{split}_x"), getattr(arrays, f"{split}_y"), f"{where} ({split})",
                    _expected_count(name, split))
    if tuple(arrays.class_names) != SPECS[name].class_names:
        raise DataError(f"{where}: class names do not match the dataset's")


# --- CIFAR (pickles written by Python 2: read with latin1) -------------------------------------

# Only what a CIFAR pickle needs: numpy arrays (and the bytes of their buffers). Anything else in a
# "dataset" file (e.g. os.system) is refused instead of executed.
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("numpy", "dtype"),
    ("_codecs", "encode"), ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
    ("__builtin__", "object"), ("builtins", "object"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle(raw: bytes, where: str) -> dict:
    try:
        obj = _SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as exc:  # truncated or garbage pickles raise many different types
        raise DataError(f"{where}: not a readable CIFAR pickle, truncated or corrupt "
                        f"({type(exc).__name__}: {first_line(exc) or 'no detail'})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a dict in the CIFAR pickle, found {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_batch(name: str, entry: dict, where: str, expected: int | None) -> tuple[np.ndarray, np.ndarray]:
    data, label_key = entry.get("data"), CIFAR_LABEL_KEY[name]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.shape[1:] != (3072,) \
            or label_key not in entry:
        found = f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}".strip()
        raise DataError(f"{where}: not a CIFAR batch: needs 'data' (uint8, N x 3072) and '{label_key}'; "
                        f"has keys {sorted(entry)}, 'data' {found}")
    try:
        labels = np.asarray(entry[label_key], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{where}: '{label_key}' is not a list of integers") from None
    images = data.reshape(-1, 3, 32, 32)  # rows are 1024 red, 1024 green, 1024 blue values
    check_split(name, images, labels, where, expected)
    return images, labels


def _read_cifar(name: str, files: dict[str, bytes], where: str) -> Arrays:
    """Decode the CIFAR files (name -> bytes); `where` + a file's name is how errors name it."""
    cls = CIFAR[name]

    def load(fname: str) -> dict:
        _check_md5(files[fname], OFFICIAL.get(name, {}).get(fname), where + fname)
        return _unpickle(files[fname], where + fname)

    meta_file, names_key = cls.meta["filename"], cls.meta["key"]
    meta = load(meta_file)
    if names_key not in meta:
        raise DataError(f"{where}{meta_file}: CIFAR meta file lacks '{names_key}' (has {sorted(meta)})")
    names = [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in meta[names_key]]
    if tuple(names) != SPECS[name].class_names:
        raise DataError(f"{where}{meta_file}: class names {names[:3]}... do not match the dataset's "
                        f"({list(SPECS[name].class_names[:3])}...)")
    splits = []
    for split, batches in (("train", cls.train_list), ("test", cls.test_list)):
        expected = _expected_count(name, split, len(batches))
        parts = [_cifar_batch(name, load(f), where + f, expected) for f, _ in batches]
        splits += [np.ascontiguousarray(np.concatenate([x for x, _ in parts])), np.concatenate([y for _, y in parts])]
    return Arrays(*splits, names)


def _read_bytes(path: Path, shown: Path | None = None) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"{shown or path}: cannot read ({exc.strerror or exc})") from None


def read_cifar_folder(name: str, folder: Path) -> Arrays:
    """Read the extracted `cifar-10-batches-py/` or `cifar-100-python/` folder."""
    return _read_cifar(name, {f: _read_bytes(folder / f) for f in cifar_files(name)}, f"{folder}/")


def read_cifar_archive(name: str, archive: Path) -> Arrays:
    """Read `cifar-10-python.tar.gz` / `cifar-100-python.tar.gz` in memory, without extracting it."""
    folder = CIFAR[name].base_folder
    wanted, found = {f"{folder}/{f}": f for f in cifar_files(name)}, {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if (fname := wanted.get(member.name.removeprefix("./"))) and member.isfile():
                    handle = tar.extractfile(member)
                    found[fname] = handle.read() if handle else b""
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(f"{archive}: corrupt or truncated archive ({type(exc).__name__}: "
                        f"{first_line(exc)}); delete it and provide the original again") from None
    if missing := [f for f in wanted.values() if f not in found]:
        raise DataError(f"{archive}: the archive lacks {folder}/{missing[0]}; delete it and provide the original again")
    return _read_cifar(name, found, f"{archive}:{folder}/")


# --- idx (Fashion-MNIST) -----------------------------------------------------------------------

def _check_idx(data: bytes, ndim: int, shown: Path) -> None:
    """Refuse what torchvision's reader only asserts on: a wrong magic, a file cut short or too long."""
    head, size = data[:4 + 4 * ndim], len(data)
    if len(head) < 4 + 4 * ndim:
        raise DataError(f"{shown}: truncated idx file ({size} bytes, no complete header)")
    if head[:4] != bytes((0, 0, 8, ndim)):
        raise DataError(f"{shown}: not a uint8 idx file with {ndim} dimension(s) "
                        f"(magic 0x{head[:4].hex()}, expected 0x000008{ndim:02x})")
    shape = struct.unpack(f">{ndim}I", head[4:])
    expected, payload = int(np.prod(shape, dtype=np.int64)), size - len(head)
    if payload != expected:
        kind = "truncated" if payload < expected else "corrupt (trailing bytes)"
        raise DataError(f"{shown}: {kind} idx file: header says {shape}, i.e. {expected} bytes of data, "
                        f"found {payload}")


def read_idx(path: Path, ndim: int, md5: str | None = None) -> np.ndarray:
    """One big-endian idx file of uint8 (`.gz` or raw): images (ndim 3) as uint8, labels as int64."""
    with tempfile.TemporaryDirectory(prefix="resnet_exp-idx-") as tmp:
        raw = path
        if path.suffix == ".gz":  # torchvision's reader wants the uncompressed file
            try:
                raw = Path(extract_archive(str(path), tmp))
            except (OSError, EOFError, zlib.error) as exc:
                raise DataError(f"{path}: cannot read, truncated or corrupt gzip ({type(exc).__name__}: "
                                f"{first_line(exc)})") from None
        data = _read_bytes(raw, path)
        _check_idx(data, ndim, path)
        _check_md5(data, md5, str(path))
        return (read_image_file if ndim == 3 else read_label_file)(str(raw)).numpy()


def read_fashion_mnist(paths: dict[str, Path]) -> Arrays:
    """Read the four Fashion-MNIST idx files; `paths` maps train_x/train_y/test_x/test_y to files."""
    name, splits, md5 = "fashion_mnist", [], OFFICIAL.get("fashion_mnist", {})
    for split in ("train", "test"):
        xpath, ypath = paths[f"{split}_x"], paths[f"{split}_y"]
        x = read_idx(xpath, 3, md5.get(IDX_FILES[f"{split}_x"]))[:, None]
        y = read_idx(ypath, 1, md5.get(IDX_FILES[f"{split}_y"]))
        check_split(name, x, y, str(xpath), _expected_count(name, split), labels_where=str(ypath))
        splits += [x, y]
    return Arrays(*splits, list(SPECS[name].class_names))
