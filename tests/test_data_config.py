"""The data config group: every YAML option builds, the schema refuses what the datamodule refuses,
with the same one-line message, and carries the datamodule's defaults."""

from __future__ import annotations

import os

import pytest

from resnet_exp.data import ImageDataModule
from resnet_exp.errors import ConfigError
from tests.test_data_module import one_line

# --- config schema and YAML options --------------------------------------------------------------

CONF = os.path.join(os.path.dirname(__file__), "..", "conf", "data")


@pytest.fixture(scope="module")
def compose():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from resnet_exp.config import register_schemas

    register_schemas()  # the schemas and the resolvers they use (e.g. cpu_workers)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=os.path.abspath(CONF), version_base="1.3"):
        yield hydra_compose
    GlobalHydra.instance().clear()


@pytest.mark.parametrize("option", ["cifar10", "cifar100", "fashion_mnist", "synthetic", "synthetic_fashion_mnist"])
def test_yaml_options_build(compose, option, tmp_path):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = compose(config_name=option, overrides=[f"data_dir={tmp_path}"])
    OmegaConf.to_object(cfg)  # range checks pass
    dm = instantiate(cfg)
    assert isinstance(dm, ImageDataModule) and isinstance(dm.name, str)
    assert dm.name == option.split("_fashion")[0]


@pytest.mark.parametrize("override", ["batch_size=abc", "foo=1", "augment=heavy", "loader=cuda", "name=imagenet"])
def test_yaml_rejects_at_composition(compose, override):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        compose(config_name="cifar10", overrides=[override])


@pytest.mark.parametrize("override,expected", [
    ("num_workers=-1", "num_workers=-1: must be >= 0"), ("batch_size=0", "batch_size=0: must be > 0"),
    ("val_size=-5", "val_size=-5: must be >= 0"), ("resize=4", "resize=4: must be null"),
])
def test_schema_range_checks(compose, override, expected, tmp_path):
    from omegaconf import OmegaConf

    cfg = compose(config_name="cifar10", overrides=[override, f"data_dir={tmp_path}"])
    with pytest.raises(ValueError) as err:
        OmegaConf.to_object(cfg)
    assert one_line(err).startswith(expected)


@pytest.mark.parametrize("config,override", [
    ("cifar10", "batch_size=0"), ("cifar10", "eval_batch_size=0"), ("cifar10", "num_workers=-1"),
    ("cifar10", "val_size=-5"), ("cifar10", "crop_padding=-1"), ("cifar10", "resize=2000"),
    ("synthetic", "num_classes=1"), ("synthetic", "in_channels=2"), ("synthetic", "image_size=4"),
    ("synthetic", "noise=-1"),
])
def test_schema_and_datamodule_say_the_same(compose, config, override, tmp_path):
    """One rule, two callers: the config schema and the Python API give the same message."""
    from omegaconf import OmegaConf

    cfg = compose(config_name=config, overrides=[override, f"data_dir={tmp_path}"])
    with pytest.raises(ValueError) as schema_err:
        OmegaConf.to_object(cfg)
    kwargs = OmegaConf.to_container(cfg, resolve=True)
    kwargs.pop("_target_")
    with pytest.raises(ConfigError) as api_err:
        ImageDataModule(**kwargs)
    assert one_line(api_err) == "data." + one_line(schema_err)


def test_schema_defaults_are_the_datamodules():
    import dataclasses
    import inspect

    from resnet_exp.config.data import DataConfig, SyntheticDataConfig
    from resnet_exp.data.options import SYNTHETIC

    params = inspect.signature(ImageDataModule.__init__).parameters
    for field in dataclasses.fields(DataConfig):
        if field.name in params and field.name not in ("name", "data_dir", "num_workers"):
            assert field.default == params[field.name].default, field.name
    synthetic = {f.name: f.default for f in dataclasses.fields(SyntheticDataConfig)}
    assert all(synthetic[k] == v for k, v in dataclasses.asdict(SYNTHETIC).items())
    dm = ImageDataModule(name="synthetic", data_dir="unused", val_size=500)
    assert dm.synthetic == dataclasses.asdict(SYNTHETIC)
