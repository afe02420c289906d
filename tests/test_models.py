"""Model zoo: torchvision parity, paper sizes, every arch x block order, knobs, bad input.

Fast by construction: counts run on the meta device, forward/backward on 2 x C x 28/32 px inputs
with at most two units per stage, torchvision parity at 1 x 3 x 64 x 64.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_exp.models import (
    BlockOrder,
    ResidualBlock,
    Shortcut,
    ZeroPadShortcut,
    create_model,
    list_models,
    resolve,
    stage_shapes,
)
from resnet_exp.models.complexity import complexity
from tests.helpers.cli import explain

ORDERS = list(BlockOrder)
TORCHVISION = {
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
    "resnet101": 44_549_160, "resnet152": 60_192_808,
}
# He et al. 2015, Table 6 (as printed: 2 significant digits, 3 for 19.4M).
CIFAR_SIZES = {"resnet20": "0.27M", "resnet32": "0.46M", "resnet44": "0.66M", "resnet56": "0.85M",
               "resnet110": "1.7M", "resnet1202": "19.4M"}
SMALL_CUSTOM = dict(widths=[8, 16], blocks=[2, 1])


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny convs gain nothing from threads, and on a shared CPU extra threads only wait."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def small_kwargs(name: str) -> dict:
    """Knobs that keep `name`'s structure but at most two units per stage."""
    if name == "custom":
        return dict(SMALL_CUSTOM)
    spec = resolve(name)
    return dict(blocks=[min(n, 2) for n in spec.blocks])


# --- exactness ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_param_count_and_names(name: str) -> None:
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        ours, theirs = create_model(name), getattr(torchvision.models, name)()
    assert n_params(ours) == TORCHVISION[name]
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()}


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_state_dict_loads_and_outputs_match(name: str) -> None:
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)().eval()
    for m in theirs.modules():  # non-trivial BN so a wrongly placed norm shows
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    with torch.device("meta"):
        ours = create_model(name)
    ours.load_state_dict(theirs.state_dict(), strict=True, assign=True)
    ours.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,size", CIFAR_SIZES.items())
def test_cifar_family_matches_paper_sizes(name: str, size: str) -> None:
    with torch.device("meta"):
        n = n_params(create_model(name, num_classes=10, input_size=32))
    digits = 1 if size in ("1.7M", "19.4M") else 2
    assert f"{n / 1e6:.{digits}f}M" == size


@pytest.mark.parametrize("name,kw,size", [
    ("resnet56", {}, 32), ("resnet50", {"stride_in_1x1": True}, 224), ("resnet164v2", {}, 32),
    ("custom", dict(SMALL_CUSTOM, block="bottleneck", stem="custom", stem_kernel=5, stem_stride=2,
                    stem_pool=True), 96),
])
def test_complexity_extrapolation_is_exact(name: str, kw: dict, size: int) -> None:
    from torch.utils.flop_counter import FlopCounterMode
    with torch.device("meta"):
        model = create_model(name, num_classes=10, input_size=size, **kw).eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.empty(1, 3, size, size, device="meta"))
    assert complexity(model.spec, 10, 3, size) == (n_params(model), counter.get_total_flops())


# --- every arch x every block order ----------------------------------------------------------

def _unique_small_specs():
    """(name, order) pairs whose small builds differ; v2 aliases and presets that only differ in
    depth collapse onto one structure once units are capped at two per stage."""
    seen, cases = set(), []
    for name in list_models():
        for order in ORDERS:
            spec = resolve(name, input_size=32, block_order=order, **small_kwargs(name))
            key = dataclasses.replace(spec, name="")
            if key not in seen:
                seen.add(key)
                cases.append((name, order.value))
    return cases


def test_every_arch_resolves_and_builds_in_every_order() -> None:
    for name in list_models():
        for order in ORDERS:
            for size in (28, 32, 224):
                spec = resolve(name, input_size=size, block_order=order,
                               **(SMALL_CUSTOM if name == "custom" else {}))
                assert spec.block_order == order
        with torch.device("meta"):
            create_model(name, num_classes=10, **small_kwargs(name))


@pytest.mark.parametrize("name,order", _unique_small_specs())
def test_forward_backward_every_parameter_gets_a_gradient(name: str, order: str) -> None:
    torch.manual_seed(0)
    for channels, size in ((1, 28), (3, 32)):
        model = create_model(name, num_classes=10, in_channels=channels, input_size=size,
                             block_order=order, width=0.25, **small_kwargs(name))
        out = model(torch.randn(2, channels, size, size))
        assert out.shape == (2, 10)
        F.cross_entropy(out, torch.tensor([1, 2])).backward()
        for pname, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), pname
            assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", [n for n in list_models() if n != "custom"])
def test_stem_auto_keeps_small_inputs_at_least_4x4_before_last_stage(name: str) -> None:
    for size in (28, 32):
        with torch.device("meta"):
            model = create_model(name, num_classes=10, input_size=size, **small_kwargs(name))
        shapes = [s for _, s in stage_shapes(model, (1, 3, size, size))]
        before_last = shapes[-3]  # stem, stages..., head: the input of the last stage
        assert min(before_last[-2:]) >= 4, (name, size, shapes)


def test_stage_shapes_imagenet() -> None:
    with torch.device("meta"):
        model = create_model("resnet18", input_size=224)
    assert stage_shapes(model, (1, 3, 224, 224)) == [
        ("stem", (1, 64, 56, 56)), ("layer1", (1, 64, 56, 56)), ("layer2", (1, 128, 28, 28)),
        ("layer3", (1, 256, 14, 14)), ("layer4", (1, 512, 7, 7)), ("head", (1, 1000))]


# --- block orders (He et al. 2016, Fig. 4) ---------------------------------------------------

def _reference(block: ResidualBlock, x: torch.Tensor, order: BlockOrder) -> torch.Tensor:
    """Fig. 4 written out by hand for a basic unit."""
    def c1(t): return block.conv1(t)
    def c2(t): return block.conv2(t)
    bn1, bn2, r = block.bn1, block.bn2, F.relu
    proj = isinstance(block.downsample, nn.Sequential)
    s = block.downsample or nn.Identity()
    if order == BlockOrder.post:
        return r(bn2(c2(r(bn1(c1(x))))) + s(x))
    if order == BlockOrder.bn_after_add:
        return r(bn2(c2(r(bn1(c1(x)))) + s(x)))
    if order == BlockOrder.relu_before_add:
        return r(bn2(c2(r(bn1(c1(x)))))) + s(x)
    if order == BlockOrder.relu_before_and_after_add:
        return r(r(bn2(c2(r(bn1(c1(x)))))) + s(x))
    if order == BlockOrder.relu_only_pre:
        p = r(x)
        return bn2(c2(r(bn1(c1(p))))) + s(p if proj else x)
    p = r(bn1(x))
    return c2(r(bn2(c1(p)))) + s(p if proj else x)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("cin,cout,stride", [(4, 8, 2), (8, 8, 1)])
def test_block_order_matches_figure_4(order: BlockOrder, cin: int, cout: int, stride: int) -> None:
    torch.manual_seed(0)
    block = ResidualBlock(cin, cout, stride, order=order, shortcut=Shortcut.B)
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.bias.data.uniform_(-0.5, 0.5)
    block.eval()
    x = torch.randn(2, cin, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(block(x), _reference(block, x, order))
    if order == BlockOrder.pre:
        assert block.bn1.num_features == cin  # bn1 normalises the unit's input
    # Fig. 4: projections see the activated input in pre-activation units; the branch's last norm
    # is mirrored in the projection only where the branch ends in a norm.
    if stride == 2:
        has_norm = len(block.downsample) == 2
        assert has_norm == (order in ("post", "relu_before_add", "relu_only_pre", "relu_before_and_after_add"))


def test_network_level_pre_activation_layout() -> None:
    v1, v2 = create_model("resnet20", num_classes=10), create_model("resnet20v2", num_classes=10)
    # v2: bare conv stem, final BN-ReLU before pooling; v1: the opposite.
    assert isinstance(v2.bn1, nn.Identity) and isinstance(v2.relu, nn.Identity)
    assert isinstance(v2.norm, nn.BatchNorm2d) and isinstance(v2.final_act, nn.ReLU)
    assert isinstance(v1.bn1, nn.BatchNorm2d) and isinstance(v1.norm, nn.Identity)
    assert v2.layer1[0].shortcut_preact  # first unit: activation after conv1 feeds both paths
    assert not v2.layer1[1].shortcut_preact
    assert v2.spec == dataclasses.replace(
        create_model("resnet20", num_classes=10, block_order="pre").spec, name="resnet20v2")


# --- knobs ---------------------------------------------------------------------------------------

def test_shortcut_options() -> None:
    with torch.device("meta"):
        a, b, c = (create_model("resnet20", num_classes=10, shortcut=s) for s in "ABC")
    assert n_params(a) < n_params(b) < n_params(c)
    assert isinstance(a.layer2[0].downsample, ZeroPadShortcut) and a.layer2[1].downsample is None
    assert isinstance(b.layer2[0].downsample, nn.Sequential) and b.layer2[1].downsample is None
    assert all(isinstance(u.downsample, nn.Sequential) for s in (c.layer1, c.layer2) for u in s)
    x = torch.randn(1, 4, 5, 5)
    y = ZeroPadShortcut(4, 8, 2)(x)
    assert y.shape == (1, 8, 3, 3) and torch.equal(y[:, :4], x[:, :, ::2, ::2])
    assert not y[:, 4:].any()


def test_stride_in_1x1_is_the_paper_v1_and_costs_fewer_flops() -> None:
    v15 = resolve("resnet50", input_size=224)
    v1 = resolve("resnet50", input_size=224, stride_in_1x1=True)
    with torch.device("meta"):
        unit = create_model("resnet50", stride_in_1x1=True).layer2[0]
    assert unit.conv1.stride == (2, 2) and unit.conv2.stride == (1, 1)
    (p15, f15), (p1, f1) = complexity(v15), complexity(v1)
    assert p15 == p1 and f1 < f15


def test_width_multiplier_rounds_and_keeps_one_channel() -> None:
    spec = resolve("resnet18", width=0.125)
    assert spec.widths == (8, 16, 32, 64) and spec.stem_width == 8
    tiny = create_model("resnet50", num_classes=3, width=1e-3, input_size=16, blocks=[1, 1, 1, 1])
    assert min(tiny.spec.widths) == 1 and tiny.spec.stem_width == 1
    assert tiny(torch.randn(2, 3, 16, 16)).shape == (2, 3)


def test_zero_init_last_makes_every_unit_start_as_its_shortcut() -> None:
    for name in ("resnet20", "resnet20v2", "resnet164"):
        model = create_model(name, num_classes=10, zero_init_last=True, blocks=[2, 2, 2]).eval()
        unit = model.layer2[1]
        x = torch.relu(torch.randn(2, unit.conv1.in_channels, 4, 4))
        with torch.no_grad():
            torch.testing.assert_close(unit(x), x)


def test_drop_path_grows_linearly_and_only_acts_in_training() -> None:
    model = create_model("resnet20", num_classes=10, drop_path=0.2)
    units = [u for s in (model.layer1, model.layer2, model.layer3) for u in s]
    assert isinstance(units[0].drop_path, nn.Identity) and units[-1].drop_path.p == pytest.approx(0.2)
    x = torch.randn(4, 16, 8, 8)
    units[-1].eval()
    torch.testing.assert_close(units[-1].drop_path(x), x)


def test_heads_and_features() -> None:
    model = create_model("resnet18", num_classes=7, width=0.125, input_size=32)
    x = torch.randn(2, 3, 32, 32)
    feats = model.forward_features(x)
    assert feats.shape == (2, model.num_features, 4, 4) and model.num_features == 64
    assert model.forward_head(feats, pre_logits=True).shape == (2, 64)
    assert create_model("resnet18", num_classes=0, width=0.125)(x).shape == (2, 64)


def test_seed_notebook_nets_from_knobs_alone() -> None:
    seed000 = create_model(  # TF-slim bottleneck net (seeds 000/001)
        "custom", num_classes=10, block="bottleneck", widths=[128, 256, 512], blocks=[2, 2, 2],
        bottleneck_widths=[32, 64, 128], stem="custom", stem_kernel=5, stem_stride=2,
        stem_width=32, stem_pool=True, width=0.25)
    assert [s[-1] for _, s in stage_shapes(seed000, (1, 3, 96, 96))][:4] == [24, 24, 12, 6]
    seed002 = create_model(  # basic-block net with an unpadded 7x7/2 stem (seeds 002/003)
        "custom", num_classes=10, widths=[64, 128, 256, 512], blocks=[2, 2, 2, 2], stem="custom",
        stem_kernel=7, stem_stride=2, stem_padding=0, stem_width=64, stem_pool=True,
        stem_pool_padding=0, width=0.25)
    # The notebook prints 45 after the conv, then 22, 11, 6, 3.
    assert [s[-1] for _, s in stage_shapes(seed002, (1, 3, 96, 96))][:5] == [22, 22, 11, 6, 3]


# --- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("name,kw,key,allowed", [
    ("resnet19", {}, "name", "resnet18"),
    ("resnet", {"depth": 19}, "depth", "18, 34, 50, 101, 152, 200"),
    ("cifar_resnet", {"depth": 21}, "depth", "6n+2"),
    ("cifar_resnet_bottleneck", {"depth": 21}, "depth", "9n+2"),
    ("resnet18", {"block_order": "preact"}, "block_order", "post, bn_after_add, relu_before_add"),
    ("resnet18", {"shortcut": "D"}, "shortcut", "A, B, C"),
    ("resnet18", {"stem": "big"}, "stem", "auto, imagenet, cifar, custom"),
    ("resnet18", {"block": "wide"}, "block", "basic, bottleneck"),
    ("custom", {"widths": [8, 16], "blocks": [1]}, "blocks", "2 entries"),
    ("custom", {"widths": [8, 16], "blocks": [1, 1], "block": "bottleneck",
                "bottleneck_widths": [4]}, "bottleneck_widths", "2 entries"),
    ("custom", {"blocks": [1, 1]}, "widths", "required"),
    ("resnet18", {"width": 0}, "width", "> 0"),
    ("resnet18", {"width": -1.0}, "width", "> 0"),
    ("resnet18", {"drop_path": 1.0}, "drop_path", "[0, 1)"),
    ("resnet18", {"stem_kernel": 5}, "stem_kernel", "stem=custom"),
    ("resnet18", {"blok_order": "pre"}, "blok_order", "block_order"),
    ("resnet", {"depth": 50, "blocks": [1, 1, 1, 1]}, "blocks", "not both"),
    ("custom", {"widths": [32, 16], "blocks": [1, 1], "shortcut": "A"}, "shortcut", "B or C"),
])
def test_bad_input_is_one_line_naming_key_and_allowed(name, kw, key, allowed) -> None:
    with pytest.raises(ValueError) as info:
        create_model(name, num_classes=10, **kw)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{key}=") and allowed in msg, msg


def test_listing_runs_and_names_every_arch(cli) -> None:
    proc = cli("resnet_exp.models")
    assert proc.returncode == 0, explain(proc)
    out = proc.stdout
    listed = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert set(list_models()) <= listed
    assert "11.69M" in out and "0.27M" in out  # resnet18 at 224 px, resnet20 at 32 px
