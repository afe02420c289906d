"""Readers of the original formats, on files generated in those exact formats."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest

from resnet_exp.data import formats
from resnet_exp.data.formats import OFFICIAL, read_cifar_archive, read_cifar_folder, read_fashion_mnist, read_idx
from resnet_exp.data.sources import _idx_in
from resnet_exp.data.specs import CIFAR10_CLASSES, CIFAR100_CLASSES
from resnet_exp.errors import DataError
from tests.helpers.data_files import (
    accept_small,
    idx_bytes,
    py2_pickle,
    write_cifar10,
    write_cifar100,
    write_fashion_mnist,
)


@pytest.fixture(autouse=True)
def small(monkeypatch):
    accept_small(monkeypatch)


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


def test_py2_pickles_need_latin1(tmp_path):
    folder = write_cifar10(tmp_path)
    assert b"\x55\x04data" in (folder / "data_batch_1").read_bytes()  # SHORT_BINSTRING, as cPickle wrote it
    meta = (folder / "batches.meta").read_bytes()
    assert b"label_names" in pickle.loads(meta, encoding="bytes")  # byte-string keys without latin1
    assert "label_names" in pickle.loads(meta, encoding="latin1")


@pytest.mark.parametrize("archive", [False, True])
def test_cifar10_roundtrip(tmp_path, archive):
    path = write_cifar10(tmp_path, train_per_batch=7, test=5, archive=archive)
    arrays = (read_cifar_archive if archive else read_cifar_folder)("cifar10", path)
    assert arrays.train_x.shape == (35, 3, 32, 32) and arrays.train_x.dtype == np.uint8
    assert arrays.test_x.shape == (5, 3, 32, 32) and arrays.test_y.dtype == np.int64
    assert arrays.class_names == list(CIFAR10_CLASSES)
    # The rows are 1024 red, 1024 green, 1024 blue values: channel-major reshape.
    if not archive:
        entry = pickle.loads((path / "data_batch_2").read_bytes(), encoding="latin1")
        np.testing.assert_array_equal(arrays.train_x[7], entry["data"][0].reshape(3, 32, 32))
        assert arrays.train_y[7] == entry["labels"][0]


@pytest.mark.parametrize("archive", [False, True])
def test_cifar100_roundtrip(tmp_path, archive):
    path = write_cifar100(tmp_path, train=150, test=40, archive=archive)
    arrays = (read_cifar_archive if archive else read_cifar_folder)("cifar100", path)
    assert arrays.train_x.shape == (150, 3, 32, 32) and arrays.test_x.shape == (40, 3, 32, 32)
    assert arrays.class_names == list(CIFAR100_CLASSES)
    assert arrays.train_y.max() == 99  # fine labels, not the 20 coarse ones


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_roundtrip(tmp_path, gz):
    write_fashion_mnist(tmp_path, train=30, test=10, gz=gz)
    arrays = read_fashion_mnist(_idx_in(tmp_path))
    assert arrays.train_x.shape == (30, 1, 28, 28) and arrays.test_x.shape == (10, 1, 28, 28)
    assert arrays.train_y.dtype == np.int64 and arrays.train_y.max() <= 9


def test_idx_is_big_endian(tmp_path):
    data = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(data)
    assert raw[:8] == b"\x00\x00\x08\x03\x00\x00\x00\x02"
    (tmp_path / "x").write_bytes(raw)
    np.testing.assert_array_equal(read_idx(tmp_path / "x", 3), data)


# --- truncated and corrupt files: one line naming the file ---------------------------------------

def test_truncated_cifar_pickle(tmp_path):
    folder = write_cifar10(tmp_path)
    batch = folder / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:5000])
    with pytest.raises(DataError) as err:
        read_cifar_folder("cifar10", folder)
    assert str(batch) in one_line(err) and "truncated or corrupt" in str(err.value)


@pytest.mark.parametrize("cut", [0.5, 0.99])
def test_truncated_cifar_archive(tmp_path, cut):
    archive = write_cifar10(tmp_path, archive=True)
    raw = archive.read_bytes()
    archive.write_bytes(raw[: int(len(raw) * cut)])
    with pytest.raises(DataError) as err:
        read_cifar_archive("cifar10", archive)
    assert str(archive) in one_line(err)


def test_garbage_archive(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"<html>not found</html>")
    with pytest.raises(DataError) as err:
        read_cifar_archive("cifar10", archive)
    assert str(archive) in one_line(err) and "corrupt" in str(err.value)


def test_archive_missing_member(tmp_path):
    import tarfile
    write_cifar10(tmp_path)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "cifar-10-batches-py" / "batches.meta", "cifar-10-batches-py/batches.meta")
    with pytest.raises(DataError) as err:
        read_cifar_archive("cifar10", archive)
    assert "lacks cifar-10-batches-py/" in one_line(err)


def test_cifar_bad_labels_and_names(tmp_path):
    folder = write_cifar10(tmp_path)
    entry = pickle.loads((folder / "test_batch").read_bytes(), encoding="latin1")
    entry["labels"][0] = 10
    (folder / "test_batch").write_bytes(py2_pickle(entry))
    with pytest.raises(DataError) as err:
        read_cifar_folder("cifar10", folder)
    assert "test_batch" in one_line(err) and "labels must be in [0, 9]" in str(err.value)
    (folder / "batches.meta").write_bytes(py2_pickle({"label_names": ["cat"] * 10}))
    with pytest.raises(DataError) as err:
        read_cifar_folder("cifar10", folder)
    assert "batches.meta" in one_line(err) and "class names" in str(err.value)


@pytest.mark.parametrize("change,expected", [({"data": None}, "not a CIFAR batch"),
                                             ({"labels": None}, "not a CIFAR batch"),
                                             ({"labels": ["cat"] * 20}, "not a list of integers")])
def test_cifar_not_a_batch(tmp_path, change, expected):
    folder = write_cifar10(tmp_path)
    entry = pickle.loads((folder / "data_batch_2").read_bytes(), encoding="latin1")
    entry = {k: v for k, v in {**entry, **change}.items() if v is not None}
    (folder / "data_batch_2").write_bytes(py2_pickle(entry))
    with pytest.raises(DataError) as err:
        read_cifar_folder("cifar10", folder)
    assert str(folder / "data_batch_2") in one_line(err) and expected in str(err.value)


def test_cifar_pickle_cannot_run_code(tmp_path):
    folder = write_cifar10(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "data_batch_1").write_bytes(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(DataError) as err:
        read_cifar_folder("cifar10", folder)
    assert "refusing to load" in one_line(err) and "print" in str(err.value)


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_idx(tmp_path, gz):
    write_fashion_mnist(tmp_path, gz=gz)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    path = tmp_path / name
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 100])
    with pytest.raises(DataError) as err:
        read_fashion_mnist(_idx_in(tmp_path))
    assert str(path) in one_line(err) and "truncated" in str(err.value)


def test_idx_bad_magic_and_mismatched_labels(tmp_path):
    write_fashion_mnist(tmp_path, gz=False)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x0d\x03" + b"\x00" * 12)
    with pytest.raises(DataError) as err:
        read_fashion_mnist(_idx_in(tmp_path))
    assert "t10k-images-idx3-ubyte" in one_line(err) and "magic" in str(err.value)
    write_fashion_mnist(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(DataError) as err:
        read_fashion_mnist(_idx_in(tmp_path))
    assert "t10k-labels-idx1-ubyte: 3 labels" in one_line(err)


def test_idx_trailing_bytes(tmp_path):
    write_fashion_mnist(tmp_path, gz=False)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes() + b"\x00\x01")
    with pytest.raises(DataError) as err:
        read_fashion_mnist(_idx_in(tmp_path))
    assert str(path) in one_line(err) and "trailing bytes" in str(err.value)


def test_gzip_garbage(tmp_path):
    write_fashion_mnist(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(b"x" * 100)[:-12] + b"\xff" * 12)
    with pytest.raises(DataError) as err:
        read_fashion_mnist(_idx_in(tmp_path))
    assert str(path) in one_line(err)


# --- the official counts and checksums are demanded outside tests --------------------------------

def test_strict_mode_demands_official_files(tmp_path, monkeypatch):
    folder = write_cifar10(tmp_path)
    write_fashion_mnist(tmp_path / "fm")
    monkeypatch.setattr(formats, "OFFICIAL", OFFICIAL)  # the table as published, not the test's
    assert formats.OFFICIAL["cifar10"]["data_batch_1"] == "c99cafc152244af753f735de768cd75f"
    with pytest.raises(DataError) as err:
        read_cifar_folder("cifar10", folder)
    assert "batches.meta: checksum mismatch" in one_line(err)
    with pytest.raises(DataError) as err:
        read_fashion_mnist(_idx_in(tmp_path / "fm"))
    assert "checksum mismatch" in one_line(err)
    # Counts are checked too (here: with the checksum out of the way).
    monkeypatch.setattr(formats, "_check_md5", lambda *a: None)
    with pytest.raises(DataError) as err:
        read_cifar_folder("cifar10", folder)
    assert "20 images, expected 10000" in one_line(err)
