"""The real Fashion-MNIST of the Debian/Ubuntu package dataset-fashion-mnist (skipped when absent)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from resnet_exp.data import ImageDataModule, sources
from resnet_exp.data.specs import FASHION_MNIST_CLASSES, SPECS, channel_stats

pytestmark = pytest.mark.skipif(not (sources.SYSTEM_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
                                reason="Debian package dataset-fashion-mnist not installed")


def test_real_fashion_mnist(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "download", lambda *a, **k: pytest.fail("must not download"))
    # Official counts and checksums demanded: no small_datasets fixture here.
    arrays = sources.load("fashion_mnist", tmp_path)
    assert arrays.train_x.shape == (60000, 1, 28, 28) and arrays.test_x.shape == (10000, 1, 28, 28)
    assert arrays.class_names == list(FASHION_MNIST_CLASSES)
    assert np.bincount(arrays.train_y).tolist() == [6000] * 10 and np.bincount(arrays.test_y).tolist() == [1000] * 10
    mean, std = channel_stats(arrays.train_x)
    assert mean == pytest.approx(SPECS["fashion_mnist"].mean, abs=1e-5)
    assert std == pytest.approx(SPECS["fashion_mnist"].std, abs=1e-5)

    start = time.perf_counter()
    dm = ImageDataModule(name="fashion_mnist", data_dir=str(tmp_path), val_size=10000, num_workers=0)
    dm.prepare_data()
    dm.setup("fit")
    assert time.perf_counter() - start < 1.0  # served from the cache
    np.testing.assert_array_equal(dm._tensors["test_x"].numpy(), arrays.test_x)
    assert len(dm._tensors["train_idx"]) == 50000 and len(dm._tensors["val_idx"]) == 10000
