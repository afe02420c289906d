"""Loader throughput: images/s each loader path delivers on CIFAR-10-shaped uint8 data (random bytes) with an
augmentation setting (`AUGMENTS`) and normalisation, as training sees them: the torch path with the training
sampler (a seed per batch). The gpu path runs on CUDA when there is one, else on CPU tensors (then a
correctness/overhead figure only)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from benchmarks.harness import mean_step_ms, plain_loop
from resnet_exp.data.datamodule import _UInt8Dataset
from resnet_exp.data.gpu_loader import GpuLoader
from resnet_exp.data.policies import BatchPolicies
from resnet_exp.data.resumable import EpochSampler, ResumableLoader
from resnet_exp.data.specs import SPECS
from resnet_exp.data.transforms import AugmentParams, BatchTransform, Normalizer
from resnet_exp.speed import synchronize

# name -> (pad-4 crop + flip, BatchPolicies arguments): data.augment values, and `mix` for
# data.random_erasing=0.25 data.mixup_alpha=0.2 data.cutmix_alpha=1.0 on top of standard.
AUGMENTS: dict[str, tuple[bool, dict[str, Any]]] = {
    "none": (False, {}), "standard": (True, {}),
    **{p: (True, {"policy": p}) for p in ("trivialaugment", "randaugment", "autoaugment")},
    "mix": (True, {"random_erasing": 0.25, "mixup_alpha": 0.2, "cutmix_alpha": 1.0}),
}


def delivered(loader: Iterable, batches: int, device: torch.device, warmup: int = 3) -> float:
    """Images/s a loader delivers onto `device`, epoch after epoch: `batches` timed after `warmup` untimed."""
    stream = (images for _ in iter(int, 1) for images, _ in loader)  # endless
    for _ in range(warmup):
        next(stream).to(device, non_blocking=True)
    synchronize(device)
    start = time.perf_counter()
    images = sum(next(stream).to(device, non_blocking=True).shape[0] for _ in range(batches))
    synchronize(device)
    return images / (time.perf_counter() - start)


def consumed(device: torch.device, batch_size: int, steps: int) -> float:
    """Images/s a torchvision ResNet-18 train step consumes (10 classes; bf16 on CUDA; channels_last), timed as
    `harness.plain_loop` times an epoch, after one warm-up epoch."""
    import torchvision

    model = torchvision.models.resnet18(num_classes=10).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(batch_size, 3, 32, 32, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,), device=device)
    autocast = torch.bfloat16 if device.type == "cuda" else None
    epochs = plain_loop(model, opt, lambda: [(x, y)] * steps, 2, device, autocast, channels_last=True)
    return batch_size / (mean_step_ms(epochs) / 1e3)


def loaders(images: torch.Tensor, labels: torch.Tensor, batch_size: int, workers: Sequence[int], augment: str,
            dev: torch.device) -> dict[str, Callable[[], Iterable]]:
    """Each loader path, made as training makes it, with the `augment` setting (`AUGMENTS`)."""
    size, spec, (crop_flip, policies) = images.shape[0], SPECS["cifar10"], AUGMENTS[augment]
    normalizer, aug = Normalizer(spec.mean, spec.std), AugmentParams(4, True) if crop_flip else AugmentParams()
    batch = BatchPolicies(**policies, num_classes=10)
    made: dict[str, Callable[[], Iterable]] = {f"loader=torch, {n} workers": lambda n=n: ResumableLoader(
        _UInt8Dataset(images, labels, torch.arange(size)), sampler=EpochSampler(size, batch_size),
        batch_size=batch_size, drop_last=True, num_workers=n, pin_memory=dev.type == "cuda", persistent_workers=n > 0,
        collate_fn=BatchTransform(normalizer, aug, train=True, policies=batch)) for n in workers}
    made[f"loader=gpu path on {dev.type}"] = lambda: GpuLoader(
        images.to(dev), labels.to(dev), None, batch_size, normalizer, aug, shuffle=True, drop_last=True, seed=0,
        policies=batch)
    return made


def measure(size: int = 50000, batch_size: int = 512, batches: int = 40, workers: Sequence[int] = (0, 2),
            threads: int = 1, consumer: str = "none", augment: Sequence[str] = ("standard",),
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """A row (path, augment, images_per_s) per loader path and augmentation setting; with `consumer="resnet18"`
    also the images/s a ResNet-18 train step consumes on the same device, and the gpu path's (first setting) ratio."""
    torch.set_num_threads(threads)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    images, labels = torch.randint(0, 256, (size, 3, 32, 32), dtype=torch.uint8), torch.randint(0, 10, (size,))
    rows = []
    for name in augment:
        for path, make in loaders(images, labels, batch_size, workers, name, dev).items():
            rows.append({"path": path, "augment": name, "images_per_s": delivered(make(), batches, dev)})
            log(f"  {path}, {name}: {rows[-1]['images_per_s']:,.0f} images/s")
    out: dict[str, Any] = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                           "threads": torch.get_num_threads(), "rows": rows}
    if consumer == "resnet18":
        out["consumer_images_per_s"] = consumed(dev, batch_size, steps=max(5, batches // 4))
        gpu_path = next(r for r in rows if r["path"].startswith("loader=gpu"))
        out["gpu_path_vs_consumer"] = gpu_path["images_per_s"] / out["consumer_images_per_s"]
    return out
