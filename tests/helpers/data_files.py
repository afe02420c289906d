"""Write tiny datasets in the exact original on-disk formats, for tests (data and CLI).

The loaders demand the official counts (50000/10000 CIFAR, 60000/10000 Fashion-MNIST) and
checksums (`resnet_exp.data.formats.OFFICIAL`); `accept_small(monkeypatch)` (what the
`small_datasets` fixture does) takes that table away for one test, so that these files pass.

    write_cifar10(root, train_per_batch=20, test=20, archive=False)   -> path written
    write_cifar100(root, train=100, test=50, archive=False)           -> path written
    write_fashion_mnist(root, train=60, test=20, gz=True)             -> folder written
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from resnet_exp.data import formats
from resnet_exp.data.specs import CIFAR10_CLASSES, CIFAR100_CLASSES


def accept_small(monkeypatch: pytest.MonkeyPatch) -> None:
    """No official counts or checksums to meet for the rest of the test: tiny files are read."""
    monkeypatch.setattr(formats, "OFFICIAL", {})


class _Py2Pickler(pickle._Pickler):
    """Protocol 2 with every str written as a Python 2 byte string (SHORT_BINSTRING/BINSTRING), as
    the CIFAR files were written by cPickle; they only load in Python 3 with encoding="latin1"."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: str) -> None:
        data = obj.encode("latin1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_str


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def _images(rng: np.random.Generator, n: int, channels: int, size: int, labels: np.ndarray) -> np.ndarray:
    # Label-dependent brightness so that tests can tell images apart, plus noise.
    base = (labels.astype(np.int64) * 37 % 200)[:, None, None, None]
    noise = rng.integers(0, 56, size=(n, channels, size, size))
    return (base + noise).astype(np.uint8)


def _labels(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return rng.permutation(np.arange(n) % k)


def _write_files(root: Path, folder: str, files: dict[str, bytes], archive: str | None) -> Path:
    if archive:
        path = root / archive
        with tarfile.open(path, "w:gz") as tar:
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
            for name, data in files.items():
                info = tarfile.TarInfo(f"{folder}/{name}")
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
        return path
    path = root / folder
    path.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (path / name).write_bytes(data)
    return path


def cifar10_files(train_per_batch: int = 20, test: int = 20, seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    files = {}
    for i, (fname, n) in enumerate([*((f"data_batch_{b}", train_per_batch) for b in range(1, 6)),
                                    ("test_batch", test)]):
        labels = _labels(rng, n, 10)
        data = _images(rng, n, 3, 32, labels).reshape(n, 3072)
        batch_label = f"training batch {i + 1} of 5" if fname != "test_batch" else "testing batch 1 of 1"
        files[fname] = py2_pickle({"batch_label": batch_label, "labels": [int(v) for v in labels],
                                   "data": data, "filenames": [f"img_{i}_{j}.png" for j in range(n)]})
    files["batches.meta"] = py2_pickle({"num_cases_per_batch": train_per_batch,
                                        "label_names": list(CIFAR10_CLASSES), "num_vis": 3072})
    return files


def write_cifar10(root, train_per_batch: int = 20, test: int = 20, archive: bool = False, seed: int = 0) -> Path:
    """`root/cifar-10-batches-py/` (or `root/cifar-10-python.tar.gz` with archive=True)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    return _write_files(root, "cifar-10-batches-py", cifar10_files(train_per_batch, test, seed),
                        "cifar-10-python.tar.gz" if archive else None)


def write_cifar100(root, train: int = 200, test: int = 100, archive: bool = False, seed: int = 0) -> Path:
    """`root/cifar-100-python/{train,test,meta}` (or `root/cifar-100-python.tar.gz`)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    files = {}
    for fname, n in (("train", train), ("test", test)):
        fine = _labels(rng, n, 100)
        files[fname] = py2_pickle({"filenames": [f"f{j}.png" for j in range(n)], "batch_label": f"{fname}ing",
                                   "fine_labels": [int(v) for v in fine],
                                   "coarse_labels": [int(v) // 5 for v in fine],
                                   "data": _images(rng, n, 3, 32, fine).reshape(n, 3072)})
    files["meta"] = py2_pickle({"fine_label_names": list(CIFAR100_CLASSES),
                                "coarse_label_names": [f"superclass_{i}" for i in range(20)]})
    return _write_files(root, "cifar-100-python", files, "cifar-100-python.tar.gz" if archive else None)


def idx_bytes(array: np.ndarray) -> bytes:
    """A uint8 array as a big-endian idx file."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_fashion_mnist(root, train: int = 60, test: int = 20, gz: bool = True, seed: int = 0) -> Path:
    """The four idx files in `root` (`*-ubyte.gz`, or raw with gz=False); returns `root`."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", train), ("t10k", test)):
        labels = _labels(rng, n, 10).astype(np.uint8)
        images = _images(rng, n, 1, 28, labels)[:, 0]
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            data = idx_bytes(arr)
            name = f"{prefix}-{kind}-ubyte"
            if gz:
                (root / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
            else:
                (root / name).write_bytes(data)
    return root
