"""The `arch` config group: every conf/arch/*.yaml composes, builds, and agrees with create_model."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from resnet_exp.config.arch import ArchConfig, register
from resnet_exp.models import ARCH_KEYS, ArchOptions, create_model, list_models, resolve

CONF = Path(__file__).resolve().parents[1] / "conf"
ARCH_FILES = sorted(p.stem for p in (CONF / "arch").glob("*.yaml"))


@pytest.fixture(scope="module")
def compose_arch(tmp_path_factory):
    """compose(arch=NAME, overrides) through a throwaway primary config that holds only `arch`,
    so these tests do not depend on the rest of conf/config.yaml."""
    register(ConfigStore.instance())
    primary = tmp_path_factory.mktemp("conf")
    (primary / "primary.yaml").write_text(
        f"defaults:\n  - arch: resnet18\n  - _self_\nhydra:\n  searchpath:\n    - file://{CONF}\n")
    with initialize_config_dir(config_dir=str(primary), version_base="1.3"):
        yield lambda name, *overrides: compose("primary", overrides=[f"arch={name}", *overrides]).arch


def test_every_named_arch_has_a_yaml() -> None:
    assert set(ARCH_FILES) == set(list_models())


def test_knobs_have_one_source_the_schema_and_resolve_take_them_all(compose_arch) -> None:
    knobs = dataclasses.fields(ArchOptions)
    assert ARCH_KEYS == tuple(f.name for f in knobs)
    # The schema is ArchOptions plus what instantiate needs: same names, types and defaults.
    schema = {f.name: f for f in dataclasses.fields(ArchConfig)}
    assert list(schema) == ["_target_", "name", *ARCH_KEYS]
    types, schema_types = typing.get_type_hints(ArchOptions), typing.get_type_hints(ArchConfig)
    for f in knobs:
        assert (schema_types[f.name], schema[f.name].default) == (types[f.name], f.default), f.name
    # Every composed arch node holds exactly those keys, and resolve takes each one at its default.
    assert set(compose_arch("resnet20")) == set(schema)
    defaults = {f.name: f.default for f in knobs}
    assert resolve("resnet20", **defaults) == resolve("resnet20")
    with pytest.raises(ValueError, match="^colour=red: unknown arch option; one of " + ", ".join(ARCH_KEYS) + "$"):
        resolve("resnet20", colour="red")


def test_readme_python_api_call() -> None:
    model = create_model("resnet56", num_classes=10, in_channels=3, input_size=32, block_order="pre",
                         zero_init_last=True)
    assert model.spec.block_order == "pre" and model.spec.zero_init_last and model.depth == 56


@pytest.mark.parametrize("name", ARCH_FILES)
def test_yaml_composes_validates_and_builds_like_create_model(compose_arch, name: str) -> None:
    cfg = compose_arch(name)
    assert cfg.name == name
    assert isinstance(OmegaConf.to_object(cfg), ArchConfig)  # runs the range checks
    with torch.device("meta"):  # full size, nothing allocated
        model = instantiate(cfg, num_classes=10, in_channels=3, input_size=32)
    # The CLI and the Python API cannot disagree: same spec as create_model's defaults.
    expected = resolve(name, input_size=32, **_custom_lists(name, cfg))
    assert model.spec == expected


def _custom_lists(name: str, cfg) -> dict:
    """custom has no layout of its own: its yaml is an example, so pass the example's knobs."""
    if name != "custom":
        return {}
    knobs = OmegaConf.to_container(cfg)
    return {k: v for k, v in knobs.items() if k not in ("_target_", "name") and v is not None}


def test_instantiate_passes_data_knobs_and_overrides(compose_arch) -> None:
    cfg = compose_arch("resnet20", "arch.block_order=pre", "arch.width=0.5", "arch.shortcut=B")
    model = instantiate(cfg, num_classes=10, in_channels=1, input_size=28)
    assert model.spec.block_order == "pre" and model.spec.widths == (8, 16, 32)
    assert model.conv1.in_channels == 1 and model.fc.out_features == 10
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_depth_sweep_on_family_config(compose_arch) -> None:
    for depth in (20, 32, 44, 56, 110):
        cfg = compose_arch("cifar_resnet", f"arch.depth={depth}")
        assert OmegaConf.to_object(cfg).depth == depth
        knobs = {k: v for k, v in OmegaConf.to_container(cfg).items() if k != "_target_"}
        assert resolve(**knobs).depth == depth


def test_custom_yaml_is_the_seed_bottleneck_net(compose_arch) -> None:
    cfg = compose_arch("custom", "arch.width=0.25")
    model = instantiate(cfg, num_classes=10, in_channels=3, input_size=96)
    assert model.spec.widths == (32, 64, 128) and model.spec.stem_kernel == 5
    basic = compose_arch(  # the basic-block example documented in custom.yaml
        "custom", "arch.block=basic", "arch.widths=[64,128,256,512]", "arch.blocks=[2,2,2,2]",
        "arch.bottleneck_widths=null", "arch.strides=null", "arch.stem_kernel=7",
        "arch.stem_padding=0", "arch.stem_width=64", "arch.stem_pool_padding=0")
    with torch.device("meta"):
        assert instantiate(basic, num_classes=10, in_channels=3, input_size=96).depth == 18


@pytest.mark.parametrize("override", ["arch.block_order=bogus", "arch.width=abc", "arch.blok_order=pre",
                                      "arch.stem=huge", "arch.shortcut=D", "arch.depth=1.5"])
def test_typos_and_bad_enums_fail_at_composition(compose_arch, override: str) -> None:
    with pytest.raises(ConfigCompositionException):
        compose_arch("resnet18", override)


@pytest.mark.parametrize("name,override,key", [
    ("resnet18", "arch.width=0", "width="),
    ("resnet18", "arch.depth=19", "depth="),
    ("cifar_resnet", "arch.depth=21", "depth="),
    ("resnet18", "arch.drop_path=1.5", "drop_path="),
    ("custom", "arch.blocks=[1,1]", "blocks="),
    ("resnet18", "arch.stem_kernel=5", "stem_kernel="),
])
def test_range_checks_run_in_post_init(compose_arch, name: str, override: str, key: str) -> None:
    cfg = compose_arch(name, override)
    with pytest.raises(ValueError) as info:
        OmegaConf.to_object(cfg)
    assert str(info.value).startswith(key) and "\n" not in str(info.value)
    # ... with the very message the Python API gives.
    knobs = {k: v for k, v in OmegaConf.to_container(cfg).items() if k != "_target_"}
    with pytest.raises(ValueError) as direct:
        create_model(**knobs)
    assert str(direct.value) == str(info.value)
