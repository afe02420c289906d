"""Loader throughput: images/s delivered by each loader path, CIFAR-10-shaped uint8 data, standard
augmentation (pad-4 crop + flip) and normalisation, as training sees it.

    python -m benchmarks.loader                       # torch loader (0 and 2 workers) + gpu path
    python -m benchmarks.loader --workers 0,2,4,8 --batch-size 512 --consumer resnet18

The gpu path runs on CUDA when available, else on CPU tensors (a correctness/overhead figure only).
`--consumer resnet18` also measures how many images/s a ResNet-18 train step (torchvision, CIFAR-10
classes, bf16 autocast on CUDA) consumes on the same device, and prints the ratio.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torch.utils.data import DataLoader

from resnet_exp.data.datamodule import _UInt8Dataset
from resnet_exp.data.gpu_loader import GpuLoader
from resnet_exp.data.specs import SPECS
from resnet_exp.data.transforms import AugmentParams, BatchTransform, Normalizer
from resnet_exp.speed import synchronize


def _measure(loader, batches: int, device: torch.device, warmup: int = 3) -> float:
    """Images/s over `batches` batches after `warmup` (the batches are moved to `device`)."""
    it = iter(loader)
    for _ in range(warmup):
        x, _ = next(it)
    synchronize(device)
    start, n = time.perf_counter(), 0
    for _ in range(batches):
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        x = x.to(device, non_blocking=True)
        n += x.shape[0]
    synchronize(device)
    return n / (time.perf_counter() - start)


def _consumer(device: torch.device, batch_size: int, steps: int) -> float:
    import torchvision

    model = torchvision.models.resnet18(num_classes=10).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(batch_size, 3, 32, 32, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,), device=device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=50000, help="train images (default 50000, as CIFAR-10)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--batches", type=int, default=40, help="timed batches per path")
    p.add_argument("--workers", default="0,2", help="comma-separated num_workers for the torch loader")
    p.add_argument("--device", default=None, help="device of the gpu path (default cuda if available, else cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch threads of the main process")
    p.add_argument("--consumer", choices=["none", "resnet18"], default="none")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)
    images = torch.randint(0, 256, (args.size, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (args.size,))
    spec = SPECS["cifar10"]
    normalizer = Normalizer(spec.mean, spec.std)
    aug = AugmentParams(4, True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"# {args.size} CIFAR-10-shaped uint8 images, batch {args.batch_size}, standard augmentation, "
          f"{args.batches} timed batches; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"gpu path on {device} ({name})")
    print(f"{'path':<28}{'images/s':>12}")
    for workers in (int(w) for w in args.workers.split(",") if w.strip()):
        dl = DataLoader(_UInt8Dataset(images, labels, torch.arange(args.size)), batch_size=args.batch_size,
                        shuffle=True, drop_last=True, num_workers=workers,
                        collate_fn=BatchTransform(normalizer, aug, train=True),
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0)
        rate = _measure(dl, args.batches, device)
        print(f"{f'torch, {workers} workers':<28}{rate:>12,.0f}")
        del dl
    gpu = GpuLoader(images.to(device), labels.to(device), None, args.batch_size, normalizer, aug,
                    shuffle=True, drop_last=True, seed=0)
    rate_gpu = _measure(gpu, args.batches, device)
    print(f"{f'gpu path ({device.type})':<28}{rate_gpu:>12,.0f}")
    if args.consumer == "resnet18":
        consumed = _consumer(device, args.batch_size, steps=max(5, args.batches // 4))
        print(f"{f'resnet18 train step ({device.type})':<28}{consumed:>12,.0f}")
        print(f"gpu path / resnet18 consumption: {rate_gpu / consumed:.1f}x")


if __name__ == "__main__":
    main()
