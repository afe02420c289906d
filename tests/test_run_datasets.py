"""The CLI (in-process) on real on-disk formats: generated CIFAR archives and the real Debian Fashion-MNIST."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.helpers.cli import TINY_TRAINING, explain, train_in_process
from tests.helpers.data_files import write_cifar10, write_cifar100

FASHION_MNIST_SYSTEM_COPY = Path("/usr/share/datasets/fashion-mnist")
FEW_BATCHES = ["trainer.limit_train_batches=2", "trainer.limit_val_batches=2",
               "trainer.limit_test_batches=2", "trainer.max_epochs=1"]


@pytest.mark.parametrize("dataset,writer,classes", [("cifar10", write_cifar10, 10),
                                                    ("cifar100", write_cifar100, 100)])
def test_cifar_archive_in_data_dir_trains_end_to_end(dataset, writer, classes, tmp_path: Path,
                                                     small_datasets) -> None:
    data_dir, run_dir = tmp_path / "data", tmp_path / "run"
    writer(data_dir, archive=True)
    proc = train_in_process(f"data={dataset}", *TINY_TRAINING, *FEW_BATCHES, f"data.data_dir={data_dir}",
                            "data.val_size=40", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["data"] == dataset and 0 <= results["test/acc"] <= 1
    assert ("test/acc_top5" in results) == (classes > 10)
    config = (run_dir / ".hydra" / "config.yaml").read_text()
    assert f"name: {dataset}" in config


@pytest.mark.skipif(not FASHION_MNIST_SYSTEM_COPY.is_dir(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_from_the_system_copy(tmp_path: Path) -> None:
    run_dir, empty = tmp_path / "run", tmp_path / "data"
    proc = train_in_process("data=fashion_mnist", *TINY_TRAINING, *FEW_BATCHES, f"data.data_dir={empty}",
                            "data.download=false", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["data"] == "fashion_mnist" and results["steps"] == 2
    # The model took its input channels and classes from the data: 1 channel in, 10 classes out.
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert state["model.conv1.weight"].shape[1] == 1
    assert state["model.fc.weight"].shape[0] == 10
