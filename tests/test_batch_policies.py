"""The training-batch switches of the data layer (resnet_exp/data/policies.py) on both loaders:
torchvision policies on grey and colour images, random erasing, MixUp/CutMix soft targets, their
seeding per batch (worker count, resume), and evaluation left alone."""

from __future__ import annotations

import pytest
import torch

from resnet_exp.data import ImageDataModule
from resnet_exp.data.policies import BatchPolicies, seeded
from resnet_exp.data.transforms import AugmentParams, BatchTransform, Normalizer, augment

POLICIES = ["trivialaugment", "randaugment", "autoaugment"]
TINY = dict(name="synthetic", train_size=96, test_size=32, val_size=32, batch_size=16, image_size=16)
ALL_ON = dict(random_erasing=0.5, mixup_alpha=0.4, cutmix_alpha=1.0)


def as_float(x: torch.Tensor) -> torch.Tensor:
    return x.float()


def datamodule(tmp_path, **kw) -> ImageDataModule:
    dm = ImageDataModule(data_dir=str(tmp_path), num_workers=0, **{**TINY, **kw})
    dm.setup()
    return dm


def pixel_values(n: int) -> torch.Tensor:
    return 10 * (torch.arange(n) % 25 + 1)


def labelled(n: int = 8, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose every pixel names its image (neighbours differ, none is 0), and labels that
    differ between neighbours."""
    x = pixel_values(n).to(torch.uint8).view(n, 1, 1, 1).expand(n, 3, 16, 16).contiguous()
    return x, torch.arange(n) % classes


# --- policies --------------------------------------------------------------------------------------

@pytest.mark.parametrize("loader", ["torch", "gpu"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("policy", POLICIES)
def test_policies_on_grey_and_colour_images_with_both_loaders(tmp_path, loader, channels, policy) -> None:
    dm = datamodule(tmp_path, loader=loader, in_channels=channels, augment=policy, **ALL_ON)
    first, again = next(iter(dm.train_dataloader())), next(iter(dm.train_dataloader()))
    x, y = first
    assert x.shape == (16, channels, 16, 16) and x.dtype == torch.float32
    assert y.shape == (16, 10) and y.dtype == torch.float32  # soft targets
    torch.testing.assert_close(y.sum(dim=1), torch.ones(16))
    # The same epoch and batch draw the same: the seed is (seed, epoch, batch), not the process's stream.
    assert torch.equal(x, again[0]) and torch.equal(y, again[1])
    plain = datamodule(tmp_path, loader=loader, in_channels=channels, augment="standard")
    assert not torch.equal(x, next(iter(plain.train_dataloader()))[0])


@pytest.mark.parametrize("policy", POLICIES)
def test_each_image_draws_its_own_operations(policy) -> None:
    x = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8).expand(32, 3, 16, 16).contiguous()
    with seeded(0):
        out, _ = BatchPolicies(policy)(x, torch.zeros(32, dtype=torch.long), as_float)
    assert len({tuple(image.flatten().tolist()) for image in out}) > 8  # one shared draw would give 1


def test_crop_and_flip_draw_from_the_batch_seed_as_a_seeded_generator_would() -> None:
    """The torch path seeds torch's global generator with the batch seed: `standard` batches are those
    of a generator seeded alike, whether or not policies follow them."""
    x, y = torch.randint(0, 256, (16, 3, 16, 16), dtype=torch.uint8), torch.zeros(16, dtype=torch.long)
    aug, norm = AugmentParams(4, True), Normalizer((0.5,) * 3, (0.25,) * 3)
    seed = 123456789
    expected = norm(augment(x, aug, generator=torch.Generator().manual_seed(seed)))
    assert torch.equal(BatchTransform(norm, aug, train=True)((x, y, seed))[0], expected)


def test_torch_loader_batches_do_not_depend_on_the_worker_count(tmp_path) -> None:
    batches = []
    for workers in (0, 1):
        dm = ImageDataModule(data_dir=str(tmp_path), num_workers=workers, persistent_workers=False,
                             augment="randaugment", **ALL_ON, **TINY)
        dm.setup()
        batches.append(list(dm.train_dataloader()))
    for (x0, y0), (x1, y1) in zip(*batches):
        assert torch.equal(x0, x1) and torch.equal(y0, y1)


@pytest.mark.parametrize("loader", ["torch", "gpu"])
@pytest.mark.parametrize("policy", POLICIES)
def test_a_resumed_epoch_sees_the_batches_of_the_uninterrupted_one(tmp_path, loader, policy) -> None:
    dm = datamodule(tmp_path, loader=loader, augment=policy, **ALL_ON)
    whole = list(dm.train_dataloader())
    resumed = dm.train_dataloader()
    resumed.load_state_dict({"epoch": 0, "batches": 2})  # as a checkpoint taken after 2 batches holds it
    rest = list(resumed)
    assert len(rest) == len(whole) - 2
    for (x0, y0), (x1, y1) in zip(whole[2:], rest):
        assert torch.equal(x0, x1) and torch.equal(y0, y1)


# --- random erasing ------------------------------------------------------------------------------

def test_random_erasing_zeroes_one_box_per_chosen_image() -> None:
    x, y = labelled(32)
    with seeded(1):
        out, labels = BatchPolicies(random_erasing=1.0)(x, y, as_float)
    assert torch.equal(labels, y)
    for image, value in zip(out, pixel_values(32)):
        erased = image[0] == 0
        rows, cols = erased.any(dim=1).nonzero().flatten(), erased.any(dim=0).nonzero().flatten()
        if rows.numel() == 0:
            continue  # no box fitted in ten tries: left whole, as v2.RandomErasing does
        box = image[:, rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert (box == 0).all(), "the erased pixels form one box, in every channel"
        assert erased.sum() == box[0].numel() <= 0.4 * 256  # at most a third of the image (+ rounding)
        assert (image[image != 0] == value).all()
    assert not BatchPolicies(random_erasing=0.0).active
    with seeded(2):
        half, _ = BatchPolicies(random_erasing=0.5)(*labelled(64), as_float)
    assert 16 <= (half == 0).flatten(1).any(dim=1).sum() <= 48


# --- MixUp / CutMix --------------------------------------------------------------------------------

def test_mixup_soft_targets_are_the_mix_of_the_pair_with_its_lambda() -> None:
    x, y = labelled()
    with seeded(3):
        mixed, targets = BatchPolicies(mixup_alpha=0.4, num_classes=10)(x, y, as_float)
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(8))
    lam = float(targets[0, y[0]])  # one lambda per batch; each image is paired with the one before it
    partner = torch.roll(torch.arange(8), 1)
    expected_targets = lam * torch.eye(10)[y] + (1 - lam) * torch.eye(10)[y[partner]]
    torch.testing.assert_close(targets, expected_targets)
    torch.testing.assert_close(mixed, lam * x.float() + (1 - lam) * x[partner].float())
    assert 0 < lam < 1


def test_cutmix_soft_targets_match_the_area_pasted_from_the_pair() -> None:
    x, y = labelled()
    with seeded(4):
        mixed, targets = BatchPolicies(cutmix_alpha=1.0, num_classes=10)(x, y, as_float)
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(8))
    partner = torch.roll(torch.arange(8), 1)
    for i in range(8):
        own = (mixed[i] == x[i].float()).all(dim=0)
        pasted = (mixed[i] == x[partner[i]].float()).all(dim=0)
        assert (own | pasted).all()  # every pixel comes from the image or its pair
        share = own.float().mean()  # the image's own area is its label's share
        torch.testing.assert_close(targets[i, y[i]], share)
        torch.testing.assert_close(targets[i, y[partner[i]]], 1 - share)


def test_with_both_on_each_batch_is_either_mixup_or_cutmix() -> None:
    policies, kinds = BatchPolicies(mixup_alpha=1.0, cutmix_alpha=1.0, num_classes=10), []
    x, y = labelled()
    for seed in range(40):
        with seeded(seed):
            mixed, _ = policies(x, y, as_float)
        pure = (mixed == x.float()).all(dim=1).float().mean()  # pixels left as they were
        kinds.append("cutmix" if pure > 0 else "mixup")
    assert 10 <= kinds.count("mixup") <= 30, kinds  # each with probability 1/2, as timm switches


# --- evaluation ------------------------------------------------------------------------------------

@pytest.mark.parametrize("loader", ["torch", "gpu"])
def test_evaluation_never_augments_or_mixes(tmp_path, loader) -> None:
    dm = datamodule(tmp_path, loader=loader, augment="autoaugment", **{**ALL_ON, "random_erasing": 1.0})
    t = dm._tensors
    x, y = next(iter(dm.test_dataloader()))
    torch.testing.assert_close(x, dm.normalizer(t["test_x"][:16]))
    assert torch.equal(y, t["test_y"][:16])
    xs = torch.cat([x for x, _ in dm.val_dataloader()])
    torch.testing.assert_close(xs, dm.normalizer(t["train_x"][t["val_idx"]]))
