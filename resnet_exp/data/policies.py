"""Training augmentations beyond crop and flip, torchvision v2's own: a policy per uint8 image, random
erasing, MixUp or CutMix. They draw from torch's global CPU generator, which the loaders seed per batch
(`seeded`), so a batch is the same in any worker process and after a resume."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torchvision.transforms import v2

POLICIES: dict[str, Callable[[], v2.Transform]] = {
    "trivialaugment": v2.TrivialAugmentWide,
    "randaugment": v2.RandAugment,
    "autoaugment": lambda: v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10),  # the datasets are CIFAR-like
}


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Inside: torch's global CPU generator seeded with `seed` (None: left alone); afterwards as it was."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):  # CPU only: the CUDA generators are not touched
        torch.default_generator.manual_seed(seed)
        yield


class BatchPolicies:
    """What a training batch gets after crop and flip: `(uint8 images, int64 labels)` in,
    `(normalised float images, labels or soft targets)` out. With nothing on, it only normalises."""

    def __init__(self, policy: str | None = None, random_erasing: float = 0.0, mixup_alpha: float = 0.0,
                 cutmix_alpha: float = 0.0, num_classes: int | None = None) -> None:
        self.policy = POLICIES[policy]() if policy else None
        self.eraser = v2.RandomErasing(p=random_erasing, value=0.0) if random_erasing > 0 else None
        mixers = [mix(alpha=alpha, num_classes=num_classes)
                  for mix, alpha in ((v2.MixUp, mixup_alpha), (v2.CutMix, cutmix_alpha)) if alpha > 0]
        self.mixer = v2.RandomChoice(mixers) if len(mixers) == 2 else (mixers[0] if mixers else None)
        # Whether anything random happens (the loaders seed only then).
        self.active = any(t is not None for t in (self.policy, self.eraser, self.mixer))

    def __call__(self, x: torch.Tensor, y: torch.Tensor,
                 normalizer: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.policy is not None:
            x = torch.stack([self.policy(image) for image in x])  # per image: a batch would share one draw
        x = normalizer(x)
        if self.eraser is not None:  # v2.RandomErasing's box per image, set to 0 in place by a slice fill
            for k in range(x.shape[0]):  # (no host-to-device copy of the value, so no sync on a GPU)
                if torch.rand(1) < self.eraser.p:  # the draw RandomErasing.forward makes
                    box = self.eraser.make_params([x[k]])
                    if box["v"] is not None:  # None: no box fitted in ten tries, the image stays whole
                        x[k, :, box["i"]:box["i"] + box["h"], box["j"]:box["j"] + box["w"]] = 0.0
        if self.mixer is not None:
            x, y = self.mixer(x, y)
        return x, y
