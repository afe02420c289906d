"""Loader throughput: images/s that each loader path delivers, as training sees them.

CIFAR-10-shaped uint8 data (random bytes), standard augmentation (pad-4 crop + flip),
normalisation, timed batches after 3 warm-up ones. The gpu path runs on CUDA when available, else on
CPU tensors (then a correctness/overhead figure only). With `consumer="resnet18"` also the images/s
a ResNet-18 train step consumes on the same device (torchvision, 10 classes, bf16 autocast and
channels_last on CUDA), and the gpu path's margin over it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader

from resnet_exp.data.datamodule import _UInt8Dataset
from resnet_exp.data.gpu_loader import GpuLoader
from resnet_exp.data.specs import SPECS
from resnet_exp.data.transforms import AugmentParams, BatchTransform, Normalizer
from resnet_exp.speed import synchronize


def images_per_s(loader: Iterable, batches: int, device: torch.device, warmup: int = 3) -> float:
    """Images/s over `batches` batches after `warmup` ones, each moved to `device`."""
    it = iter(loader)
    for _ in range(warmup):
        next(it)
    synchronize(device)
    start, n = time.perf_counter(), 0
    for _ in range(batches):
        try:
            x, _ = next(it)
        except StopIteration:
            it = iter(loader)
            x, _ = next(it)
        n += x.to(device, non_blocking=True).shape[0]
    synchronize(device)
    return n / (time.perf_counter() - start)


def consumed_per_s(device: torch.device, batch_size: int, steps: int) -> float:
    """Images/s a torchvision ResNet-18 train step consumes on `device` (3 warm-up steps)."""
    import torchvision

    model = torchvision.models.resnet18(num_classes=10).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(batch_size, 3, 32, 32, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,), device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return steps * batch_size / (time.perf_counter() - start)


def measure(size: int = 50000, batch_size: int = 512, batches: int = 40, workers: Sequence[int] = (0, 2),
            device: str | None = None, consumer: str = "none", threads: int | None = None,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """Rows of (path, images_per_s); with a consumer, its images/s and the gpu path's ratio to it.
    `threads`: torch threads of this process (None: torch's default)."""
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)
    images = torch.randint(0, 256, (size, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (size,))
    spec = SPECS["cifar10"]
    normalizer, aug = Normalizer(spec.mean, spec.std), AugmentParams(4, True)
    rows = []
    for n in workers:
        dl = DataLoader(_UInt8Dataset(images, labels, torch.arange(size)), batch_size=batch_size, shuffle=True,
                        drop_last=True, num_workers=n, collate_fn=BatchTransform(normalizer, aug, train=True),
                        pin_memory=dev.type == "cuda", persistent_workers=n > 0)
        rows.append({"path": f"loader=torch, {n} workers", "images_per_s": images_per_s(dl, batches, dev)})
        log(f"  {rows[-1]['path']}: {rows[-1]['images_per_s']:,.0f} images/s")
        del dl
    gpu = GpuLoader(images.to(dev), labels.to(dev), None, batch_size, normalizer, aug, shuffle=True,
                    drop_last=True, seed=0)
    rows.append({"path": f"loader=gpu path on {dev.type}", "images_per_s": images_per_s(gpu, batches, dev)})
    log(f"  {rows[-1]['path']}: {rows[-1]['images_per_s']:,.0f} images/s")
    out: dict[str, Any] = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                           "threads": torch.get_num_threads(), "rows": rows}
    if consumer == "resnet18":
        out["consumer_images_per_s"] = consumed_per_s(dev, batch_size, steps=max(5, batches // 4))
        out["gpu_path_vs_consumer"] = rows[-1]["images_per_s"] / out["consumer_images_per_s"]
    return out
