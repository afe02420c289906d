"""The datamodule: splits, normalisation, augmentation on both loader paths, DDP shards, synthetic,
config schema, and the one-line errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from resnet_exp.data import ImageDataModule
from resnet_exp.data.datamodule import split_indices
from resnet_exp.data.gpu_loader import GpuLoader
from resnet_exp.data.specs import SPECS, channel_stats, make_synthetic
from resnet_exp.data.transforms import AugmentParams, BatchTransform, Normalizer, crop_flip
from resnet_exp.errors import ConfigError, DataError
from tests.helpers.data_files import write_cifar10

SMALL = dict(train_size=600, test_size=200, val_size=100, batch_size=50, num_workers=0)


def synthetic(tmp_path, **kw) -> ImageDataModule:
    return ImageDataModule(name="synthetic", data_dir=str(tmp_path), **{**SMALL, **kw})


def one_line(err) -> str:
    assert "\n" not in str(err.value)
    return str(err.value)


# --- interface -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name,shape,classes", [("cifar10", (3, 32, 32), 10), ("cifar100", (3, 32, 32), 100),
                                                ("fashion_mnist", (1, 28, 28), 10)])
def test_attributes_before_setup(tmp_path, name, shape, classes):
    dm = ImageDataModule(name=name, data_dir=str(tmp_path / "nothing-here"))
    assert (dm.num_classes, dm.example_input_shape, dm.name) == (classes, shape, name)
    assert len(dm.class_names) == classes and dm.image_size == shape[1]
    assert not (tmp_path / "nothing-here").exists()  # construction touches no files


@pytest.mark.parametrize("loader", ["torch", "gpu"])
def test_batches(tmp_path, loader):
    dm = synthetic(tmp_path, loader=loader)
    dm.prepare_data()
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (50, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert len(dm.train_dataloader()) == 10 and len(dm.val_dataloader()) == 2 and len(dm.test_dataloader()) == 4


def test_auto_loader_is_torch_without_cuda(tmp_path):
    dm = synthetic(tmp_path)
    assert dm.loader_kind() == "torch"
    dm.setup()
    assert isinstance(dm.train_dataloader(), torch.utils.data.DataLoader)


def test_resize(tmp_path):
    dm = synthetic(tmp_path, resize=64, augment="standard")
    assert dm.image_size == 64 and dm.example_input_shape == (3, 64, 64) and dm.augment_params.padding == 8
    dm.setup()
    assert next(iter(dm.test_dataloader()))[0].shape == (50, 3, 64, 64)


def test_cifar10_from_data_dir(tmp_path, small_datasets):
    write_cifar10(tmp_path, train_per_batch=40, test=30)
    dm = ImageDataModule(name="cifar10", data_dir=str(tmp_path), val_size=20, batch_size=16, num_workers=0)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_dataloader()) == 180 // 16 and len(dm.val_dataloader()) == 2
    assert dm.normalizer.mean == SPECS["cifar10"].mean  # the real dataset's numbers, not the tiny file's


# --- splits --------------------------------------------------------------------------------------

def test_split_fixed_disjoint_and_seeded():
    train, val = split_indices(1000, 100, seed=0)
    again = split_indices(1000, 100, seed=0)
    other = split_indices(1000, 100, seed=1)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])
    assert not np.array_equal(val, other[1])
    assert len(val) == 100 and not set(train) & set(val) and set(train) | set(val) == set(range(1000))


def test_split_ignores_global_seed(tmp_path):
    vals = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        dm = synthetic(tmp_path)
        dm.setup()
        vals.append(dm._tensors["val_idx"].clone())
    assert torch.equal(*vals)


def test_val_size_zero(tmp_path):
    dm = synthetic(tmp_path, val_size=0)
    dm.setup()
    assert dm.val_dataloader() == []
    dm = synthetic(tmp_path, val_size=0, val_on_test=True)
    dm.setup()
    assert len(dm.val_dataloader().dataset) == 200


# --- normalisation -------------------------------------------------------------------------------

def test_channel_stats_and_normalizer():
    x = np.random.default_rng(0).integers(0, 256, (50, 3, 8, 8)).astype(np.uint8)
    mean, std = channel_stats(x)
    ref = x.astype(np.float64) / 255
    np.testing.assert_allclose(mean, ref.mean(axis=(0, 2, 3)), rtol=1e-9)
    np.testing.assert_allclose(std, ref.std(axis=(0, 2, 3)), rtol=1e-9)
    out = Normalizer(mean, std)(torch.from_numpy(x))
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.mean(dim=(0, 2, 3)).numpy(), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(dim=(0, 2, 3), unbiased=False).numpy(), 1, atol=1e-4)


def test_cifar10_std_is_the_true_one():
    assert SPECS["cifar10"].std == pytest.approx((0.2470, 0.2435, 0.2616), abs=1e-4)


# --- augmentation: same distribution on both paths; evaluation never augments --------------------

def position_images(n: int, size: int = 32) -> torch.Tensor:
    """Channel 0 holds row+1, channel 1 col+1: a crop's pixels say where they came from."""
    ar = torch.arange(1, size + 1, dtype=torch.uint8)
    img = torch.stack([ar[:, None].expand(size, size), ar[None, :].expand(size, size),
                       torch.zeros(size, size, dtype=torch.uint8)])
    return img.expand(n, 3, size, size).contiguous()


def recover(batch: torch.Tensor, pad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop offsets dy, dx and flip flags of augmented position images (un-normalised)."""
    x = batch.round().long()
    c = x.shape[-1] // 2  # the centre pixel is inside every crop
    dy = x[:, 0, c, c] - 1 - c + pad
    row = x[:, 1, c]
    flip = row[:, c + 1] < row[:, c]
    src = torch.where(flip, x.shape[-1] - 1 - c, torch.full_like(flip, c, dtype=torch.long))
    dx = x[:, 1, c, c] - 1 - src + pad
    return dy.numpy(), dx.numpy(), flip.numpy()


IDENTITY = Normalizer((0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255))


def test_crop_flip_matches_pad_and_slice():
    x = torch.randint(0, 256, (6, 3, 10, 10), dtype=torch.uint8)
    dy, dx = torch.tensor([0, 1, 2, 3, 4, 2]), torch.tensor([4, 3, 2, 1, 0, 2])
    flip = torch.tensor([False, True, False, True, True, False])
    out = crop_flip(x, dy, dx, flip, padding=2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(6):
        ref = padded[i, :, dy[i]:dy[i] + 10, dx[i]:dx[i] + 10]
        assert torch.equal(out[i], ref.flip(-1) if flip[i] else ref)


def augmented_torch(images, aug, batches=8):
    dl = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, torch.zeros(len(images), dtype=torch.long)),
        batch_size=500, collate_fn=lambda b: BatchTransform(IDENTITY, aug, train=True)(
            (torch.stack([s[0] for s in b]), torch.stack([s[1] for s in b]))))
    return torch.cat([x for x, _ in dl])


def augmented_gpu_path(images, aug):
    loader = GpuLoader(images, torch.zeros(len(images), dtype=torch.long), None, 500, IDENTITY, aug,
                       shuffle=True, drop_last=True, seed=3)
    return torch.cat([x for x, _ in loader])


@pytest.mark.parametrize("flip", [True, False])
def test_augmentation_distribution_equal_on_both_paths(flip):
    torch.manual_seed(0)
    images, aug = position_images(4000), AugmentParams(4, flip)
    stats = []
    for out in (augmented_torch(images, aug), augmented_gpu_path(images, aug)):
        dy, dx, flips = recover(out, 4)
        assert dy.min() == 0 and dy.max() == 8 and dx.min() == 0 and dx.max() == 8
        for offsets in (dy, dx):  # uniform over the 9 offsets: each about 1/9 of 4000 = 444
            counts = np.bincount(offsets, minlength=9)
            assert counts.min() > 340 and counts.max() < 550, counts
        assert (abs(flips.mean() - 0.5) < 0.04) if flip else not flips.any()
        stats.append((dy.mean(), dx.mean(), flips.mean()))
    np.testing.assert_allclose(stats[0], stats[1], atol=0.2)


@pytest.mark.parametrize("loader", ["torch", "gpu"])
def test_evaluation_never_augments(tmp_path, loader):
    dm = synthetic(tmp_path, loader=loader, augment="standard")
    dm.setup()
    t = dm._tensors
    x, _ = next(iter(dm.test_dataloader()))
    torch.testing.assert_close(x, dm.normalizer(t["test_x"][:50]))
    xs = torch.cat([x for x, _ in dm.val_dataloader()])
    torch.testing.assert_close(xs, dm.normalizer(t["train_x"][t["val_idx"]]))
    train = next(iter(dm.train_dataloader()))[0]
    assert (train == dm.normalizer(torch.zeros(1, 3, 1, 1, dtype=torch.uint8))).any()  # padded: augmented


# --- DDP shards ------------------------------------------------------------------------------------

def test_gpu_loader_shards_are_disjoint():
    images = torch.arange(103, dtype=torch.uint8).view(103, 1, 1, 1).expand(103, 3, 4, 4).contiguous()
    labels = torch.arange(103)
    seen = []
    for rank in range(2):
        loader = GpuLoader(images, labels, None, 10, IDENTITY, shuffle=True, drop_last=True, seed=5,
                           rank=rank, world_size=2)
        seen.append(torch.cat([y for _, y in loader]))
        assert len(loader) == 5
    assert not set(seen[0].tolist()) & set(seen[1].tolist())
    evals = [torch.cat([y for _, y in GpuLoader(images, labels, None, 10, IDENTITY, rank=r, world_size=2)])
             for r in range(2)]
    assert sorted(torch.cat(evals).tolist()) == list(range(103))


def test_torch_loader_accepts_lightning_distributed_sampler(tmp_path):
    from pytorch_lightning.utilities.data import _update_dataloader
    from torch.utils.data import DistributedSampler

    dm = synthetic(tmp_path)
    dm.setup()
    dl = dm.train_dataloader()
    shards = []
    for rank in range(2):
        sampler = DistributedSampler(dl.dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)
        new = _update_dataloader(dl, sampler)
        assert new.drop_last and new.collate_fn is dl.collate_fn
        shards.append(torch.cat([y for _, y in new]))
    idx = [set(sampler_idx) for sampler_idx in (list(DistributedSampler(dl.dataset, 2, r, seed=0)) for r in range(2))]
    assert not idx[0] & idx[1] and len(shards[0]) == len(shards[1]) == 250


# --- synthetic -----------------------------------------------------------------------------------

def test_synthetic_deterministic_and_learnable():
    a, b = make_synthetic(train_size=500, test_size=300, seed=0), make_synthetic(train_size=500, test_size=300, seed=0)
    assert np.array_equal(a.train_x, b.train_x) and np.array_equal(a.test_y, b.test_y)
    assert not np.array_equal(a.train_x, make_synthetic(train_size=500, test_size=300, seed=1).train_x)
    # Class means differ: a nearest-class-mean classifier does far better than chance on the test split.
    means = np.stack([a.train_x[a.train_y == k].reshape(-1, 3072).mean(0) for k in range(10)])
    dist = ((a.test_x.reshape(-1, 1, 3072).astype(np.float32) - means[None]) ** 2).sum(-1)
    assert (dist.argmin(1) == a.test_y).mean() > 0.5
    assert np.bincount(a.train_y).min() == 50  # balanced


def test_synthetic_fashion_mnist_shape(tmp_path):
    dm = synthetic(tmp_path, in_channels=1, image_size=28)
    assert dm.example_input_shape == (1, 28, 28)
    dm.setup()
    assert next(iter(dm.train_dataloader()))[0].shape == (50, 1, 28, 28)
    assert len(dm.normalizer.mean) == 1


# --- bad input: one line, naming the key --------------------------------------------------------

@pytest.mark.parametrize("kwargs,expected", [
    (dict(name="imagenet"), "data.name=imagenet: must be one of cifar10, cifar100, fashion_mnist, synthetic"),
    (dict(name="cifar10", val_size=50000), "data.val_size=50000: must be smaller than the 50000"),
    (dict(name="cifar10", num_workers=-1), "data.num_workers=-1: must be >= 0"),
    (dict(name="cifar10", batch_size=0), "data.batch_size=0: must be > 0"),
    (dict(name="cifar10", loader="cuda"), "data.loader=cuda: must be one of auto, torch, gpu"),
    (dict(name="cifar10", num_classes=7), "data.num_classes=7: only the synthetic dataset"),
])
def test_bad_arguments(tmp_path, kwargs, expected):
    with pytest.raises(ConfigError) as err:
        ImageDataModule(data_dir=str(tmp_path), **kwargs)
    assert one_line(err).startswith(expected)


def test_val_size_larger_than_files(tmp_path, small_datasets):
    write_cifar10(tmp_path, train_per_batch=10)
    dm = ImageDataModule(name="cifar10", data_dir=str(tmp_path), val_size=60)
    with pytest.raises(ConfigError) as err:
        dm.setup()
    assert "data.val_size=60: must be smaller than the 50 images" in one_line(err)


def test_wrong_checksum_one_line(tmp_path):
    write_cifar10(tmp_path)  # tiny files, official checksums demanded
    with pytest.raises(DataError) as err:
        ImageDataModule(name="cifar10", data_dir=str(tmp_path), download=False).prepare_data()
    assert "checksum mismatch" in one_line(err)


@pytest.mark.parametrize("name,hflip,flips", [("fashion_mnist", None, False), ("fashion_mnist", True, True),
                                              ("cifar10", None, True), ("cifar10", False, False)])
def test_hflip_overrides_the_datasets_default(tmp_path, name, hflip, flips):
    dm = ImageDataModule(name=name, data_dir=str(tmp_path), hflip=hflip)
    assert dm.augment_params.flip is flips


@pytest.mark.parametrize("loader", ["torch", "gpu"])
@pytest.mark.parametrize("hflip", [True, False])
def test_hflip_mirrors_training_images_on_both_loaders(tmp_path, loader, hflip):
    """No crop: each training image arrives as it is or mirrored, mirrored only with hflip=true."""
    dm = synthetic(tmp_path, loader=loader, augment="standard", crop_padding=0, hflip=hflip)
    dm.setup("fit")
    originals = dm.normalizer(dm._tensors["train_x"][dm._tensors["train_idx"]])
    keys = {x.numpy().tobytes(): "as is" for x in originals} | {x.flip(-1).numpy().tobytes(): "mirrored"
                                                                  for x in originals}
    seen = [keys[x.numpy().tobytes()] for batch, _ in dm.train_dataloader() for x in batch]
    assert ("mirrored" in seen) is hflip and "as is" in seen
