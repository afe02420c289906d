"""Where data comes from: data_dir, system copy, download (faked at `urllib.request.urlopen`, under
torchvision's download code, or served from localhost: no test touches the network), cache."""

from __future__ import annotations

import hashlib
import io
import os
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from resnet_exp.data import ImageDataModule, sources
from resnet_exp.data.formats import OFFICIAL
from resnet_exp.errors import DataError
from tests.helpers.data_files import accept_small, write_cifar10, write_cifar100, write_fashion_mnist


def offline_setup(monkeypatch, tmp_path) -> None:
    """Small datasets allowed and no system copy."""
    accept_small(monkeypatch)
    monkeypatch.setattr(sources, "SYSTEM_FASHION_MNIST", tmp_path / "no-system-copy")


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """`offline_setup`, and any download attempt fails like an offline machine."""
    offline_setup(monkeypatch, tmp_path)

    def no_network(request, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)


def one_line(err) -> str:
    assert "\n" not in str(err.value)
    return str(err.value)


# --- order of sources ----------------------------------------------------------------------------

def test_data_dir_comes_before_system_copy(tmp_path, monkeypatch):
    system = write_fashion_mnist(tmp_path / "system", train=40, seed=1)
    monkeypatch.setattr(sources, "SYSTEM_FASHION_MNIST", system)
    data_dir = tmp_path / "data"
    assert sources.load("fashion_mnist", data_dir).train_x.shape[0] == 40  # from the system copy
    assert (data_dir / "fashion_mnist.uint8.pt").is_file()  # cached in data_dir, system copy untouched
    assert sorted(p.name for p in system.iterdir()) == sorted(p.name for p in system.iterdir() if "ubyte" in p.name)
    write_fashion_mnist(data_dir / "fashion-mnist", train=50, seed=2)
    assert sources.load("fashion_mnist", data_dir).train_x.shape[0] == 50  # data_dir wins, cache rebuilt


def test_extracted_folder_comes_before_archive(tmp_path):
    write_cifar10(tmp_path, train_per_batch=3, archive=True)
    assert sources.load("cifar10", tmp_path).train_x.shape[0] == 15
    write_cifar10(tmp_path, train_per_batch=4)
    assert sources.load("cifar10", tmp_path).train_x.shape[0] == 20


def test_torchvision_layout_is_found(tmp_path):
    write_fashion_mnist(tmp_path / "FashionMNIST" / "raw", gz=False, train=33)
    assert sources.load("fashion_mnist", tmp_path).train_x.shape[0] == 33


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "fashion_mnist"])
def test_all_sources_fail_in_one_message(tmp_path, name):
    with pytest.raises(DataError) as err:
        ImageDataModule(name=name, data_dir=str(tmp_path / "data")).prepare_data()
    msg = one_line(err)
    assert msg.startswith(f"{name}: no copy of the dataset found. Looked in: {tmp_path / 'data'}")
    assert "Name or service not known" in msg and "failed" in msg
    assert "Remedies: (1)" in msg and "(2)" in msg and "(3)" in msg
    if name == "fashion_mnist":
        assert str(tmp_path / "no-system-copy") in msg and "dataset-fashion-mnist" in msg
    else:
        assert "https://www.cs.toronto.edu/~kriz/" in msg
    assert not (tmp_path / "data").exists()  # nothing left behind


def test_download_disabled_is_said(tmp_path):
    with pytest.raises(DataError) as err:
        ImageDataModule(name="cifar100", data_dir=str(tmp_path), download=False).prepare_data()
    assert "download not attempted (data.download=false)" in one_line(err)


# --- downloads: verified and atomic --------------------------------------------------------------

class FakeResponse:
    """What `urlopen` returns, serving `payload`; the connection drops after `fail_after` bytes."""

    def __init__(self, url: str, payload: bytes, fail_after: int | None) -> None:
        self.url, self.length, self.fail_after = url, len(payload), fail_after
        self.body = io.BytesIO(payload[:fail_after] if fail_after else payload)

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def read(self, size: int = -1) -> bytes:
        chunk = self.body.read(size)
        if not chunk and self.fail_after:
            raise ConnectionResetError("connection reset by peer")
        return chunk


def _fake_cifar_download(tmp_path, monkeypatch, payload: bytes, fail_after: int | None = None):
    md5 = hashlib.md5(payload).hexdigest()
    set_cifar10_download(monkeypatch, "https://example.invalid/c10.tgz", md5)
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda request, *a, **k: FakeResponse(request.full_url, payload, fail_after))


def set_cifar10_download(monkeypatch, url: str, md5: str) -> None:
    monkeypatch.setitem(sources.DOWNLOADS, "cifar10", [(url, "cifar-10-python.tar.gz", md5)])


def test_download_success(tmp_path, monkeypatch):
    archive = write_cifar10(tmp_path / "src", archive=True)
    _fake_cifar_download(tmp_path, monkeypatch, archive.read_bytes())
    data_dir = tmp_path / "data"
    assert sources.load("cifar10", data_dir).train_x.shape[0] == 100
    assert sorted(p.name for p in data_dir.iterdir()) == ["cifar-10-python.tar.gz", "cifar10.uint8.pt"]


@pytest.mark.parametrize("mode", ["interrupted", "checksum"])
def test_failed_download_leaves_nothing(tmp_path, monkeypatch, mode):
    archive = write_cifar10(tmp_path / "src", archive=True)
    payload = archive.read_bytes()
    if mode == "interrupted":
        _fake_cifar_download(tmp_path, monkeypatch, payload, fail_after=len(payload) // 2)
    else:
        _fake_cifar_download(tmp_path, monkeypatch, payload)
        set_cifar10_download(monkeypatch, "https://example.invalid/c10.tgz", "0" * 32)
    data_dir = tmp_path / "data"
    with pytest.raises(DataError) as err:
        sources.load("cifar10", data_dir)
    msg = one_line(err)
    assert ("connection reset" in msg) if mode == "interrupted" else ("checksum mismatch" in msg)
    assert not data_dir.exists()
    data_dir.mkdir()
    with pytest.raises(DataError):
        sources.load("cifar10", data_dir)
    assert list(data_dir.iterdir()) == []  # no temporary or partial file


# --- bad data_dir --------------------------------------------------------------------------------

def test_data_dir_is_a_file(tmp_path):
    path = tmp_path / "data"
    path.write_text("oops")
    for target in (path, path / "sub"):
        with pytest.raises(DataError) as err:
            ImageDataModule(name="cifar10", data_dir=str(target)).prepare_data()
        assert "data.data_dir=" in one_line(err)


def test_data_dir_unwritable(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # tests may run as root
    with pytest.raises(DataError) as err:
        sources.load("cifar10", tmp_path / "data")
    assert "not writable" in one_line(err)


def test_unwritable_data_dir_with_files_still_loads(tmp_path, monkeypatch):
    write_cifar10(tmp_path)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert sources.load("cifar10", tmp_path).train_x.shape[0] == 100  # read in place, not cached
    assert not (tmp_path / "cifar10.uint8.pt").exists()


def test_corrupt_archive_is_never_used(tmp_path):
    archive = write_cifar10(tmp_path, archive=True)
    archive.write_bytes(archive.read_bytes()[:-300])
    with pytest.raises(DataError) as err:
        ImageDataModule(name="cifar10", data_dir=str(tmp_path)).prepare_data()
    assert str(archive) in one_line(err)
    assert not (tmp_path / "cifar10.uint8.pt").exists()


# --- the cache -----------------------------------------------------------------------------------

def test_cache_second_load_fast_and_equal(tmp_path, monkeypatch):
    write_cifar100(tmp_path, train=500, test=100, archive=True)
    first = sources.load("cifar100", tmp_path)
    calls = []
    monkeypatch.setattr(sources.formats, "read_cifar_archive", lambda *a: calls.append(a))
    start = time.perf_counter()
    second = sources.load("cifar100", tmp_path)
    assert time.perf_counter() - start < 0.5 and calls == []
    for key in ("train_x", "train_y", "test_x", "test_y"):
        np.testing.assert_array_equal(getattr(first, key), getattr(second, key))
    assert second.class_names == first.class_names
    assert sources.is_ready("cifar100", tmp_path)


def test_cache_follows_the_source(tmp_path):
    write_cifar10(tmp_path, train_per_batch=3)
    assert sources.load("cifar10", tmp_path).train_x.shape[0] == 15
    time.sleep(0.01)
    write_cifar10(tmp_path, train_per_batch=5)
    assert not sources.is_ready("cifar10", tmp_path)
    assert sources.load("cifar10", tmp_path).train_x.shape[0] == 25


def test_corrupt_cache_is_rebuilt(tmp_path):
    write_fashion_mnist(tmp_path)
    sources.load("fashion_mnist", tmp_path)
    cache = tmp_path / "fashion_mnist.uint8.pt"
    cache.write_bytes(cache.read_bytes()[:1000])
    assert not sources.is_ready("fashion_mnist", tmp_path)
    assert sources.load("fashion_mnist", tmp_path).train_x.shape == (60, 1, 28, 28)
    assert sources.is_ready("fashion_mnist", tmp_path)


def test_small_cache_is_not_trusted_outside_tests(tmp_path, monkeypatch):
    write_cifar10(tmp_path)
    sources.load("cifar10", tmp_path)
    monkeypatch.setattr(sources.formats, "OFFICIAL", OFFICIAL)  # the table as published, not the test's
    assert not sources.is_ready("cifar10", tmp_path)
    with pytest.raises(DataError, match="checksum mismatch"):
        sources.load("cifar10", tmp_path)


def test_prepare_data_twice_is_cheap(tmp_path, monkeypatch):
    write_cifar10(tmp_path)
    ImageDataModule(name="cifar10", data_dir=str(tmp_path)).prepare_data()
    monkeypatch.setattr(sources, "load", lambda *a, **k: pytest.fail("decoded again"))
    dm = ImageDataModule(name="cifar10", data_dir=str(tmp_path))
    dm.prepare_data()
    dm.prepare_data()


def test_real_fetch_from_a_local_server(tmp_path, monkeypatch):
    """The real HTTP code (urllib, progress bar, temp file, md5, rename) against a server on localhost."""
    import functools
    import http.server
    import threading

    monkeypatch.undo()  # restore the real urlopen that the autouse fixture replaced
    offline_setup(monkeypatch, tmp_path)
    served = tmp_path / "served"
    archive = write_cifar10(served, archive=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{archive.name}"
        md5 = hashlib.md5(archive.read_bytes()).hexdigest()
        set_cifar10_download(monkeypatch, url, md5)
        data_dir = tmp_path / "data"
        assert sources.load("cifar10", data_dir).train_x.shape[0] == 100
        assert (data_dir / "cifar-10-python.tar.gz").read_bytes() == archive.read_bytes()
        set_cifar10_download(monkeypatch, url + ".missing", md5)
        with pytest.raises(DataError) as err:
            sources.load("cifar10", tmp_path / "other")
        assert "HTTPError" in one_line(err) and "404" in str(err.value)
        # Served whole, but not the file the md5 names: refused by torchvision's integrity check.
        set_cifar10_download(monkeypatch, url, "0" * 32)
        with pytest.raises(DataError) as err:
            sources.load("cifar10", tmp_path / "third")
        assert f"download from {url} failed: checksum mismatch" in one_line(err)
        assert not (tmp_path / "third").exists()
    finally:
        server.shutdown()
        server.server_close()
