"""The BatchNorm knobs (norm_eps, norm_momentum, norm_scale, norm_batch_stats) and `init`, which
the TF-ported recipes use to match their notebooks: each checked against what it claims to copy."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from resnet_exp.models import complexity, create_model

TINY = dict(num_classes=10, in_channels=3, input_size=16, width=0.25)


def norms(model: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def test_eps_momentum_and_no_scale_reach_every_batchnorm() -> None:
    """TF-slim's batch_norm defaults: decay 0.999 (momentum 0.001), eps 1e-3, scale=False."""
    plain = create_model("resnet20", **TINY)
    slim = create_model("resnet20", **TINY, norm_eps=1e-3, norm_momentum=0.001, norm_scale=False)
    assert len(norms(slim)) == len(norms(plain)) > 0
    assert all((m.eps, m.momentum, m.weight) == (1e-3, 0.001, None) for m in norms(slim))
    assert all(m.bias is not None and m.bias.requires_grad for m in norms(slim))  # the shift stays
    gammas = sum(m.num_features for m in norms(plain))
    n_params = sum(p.numel() for p in slim.parameters())
    assert n_params == sum(p.numel() for p in plain.parameters()) - gammas
    assert complexity(slim.spec, 10, 3, 16)[0] == n_params
    slim.train()(torch.randn(4, 3, 16, 16))  # trains, and the running mean moves by 0.001 per step
    first = norms(slim)[0]
    assert 0 < first.running_mean.abs().max() < 0.01


def test_running_statistics_in_training_act_as_a_fixed_affine_layer() -> None:
    """Keras' BatchNormalization called without training=True (seed notebook 004): the moving
    statistics stay at 0 and 1, so each BN is gamma * x / sqrt(1 + eps) + beta, also in training."""
    torch.manual_seed(0)
    model = create_model("resnet20", **TINY, norm_batch_stats=False, norm_eps=1e-3)
    bn = model.bn1
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.uniform_(-1.0, 1.0)
    x = torch.randn(4, bn.num_features, 5, 5)
    expected = bn.weight[:, None, None] * x / math.sqrt(1 + 1e-3) + bn.bias[:, None, None]
    torch.testing.assert_close(bn.train()(x), expected)
    images = torch.randn(4, 3, 16, 16)
    trained = model.train()(images)
    assert all(m.running_mean.abs().max() == 0 and (m.running_var == 1).all() and m.num_batches_tracked == 0
               for m in norms(model))
    torch.testing.assert_close(trained, model.eval()(images))  # one function in train and eval mode
    loss = trained.sum()
    loss.backward()
    assert bn.weight.grad is not None and bn.bias.grad is not None  # gamma and beta still learn


def test_xavier_init_is_glorot_uniform_with_zero_biases() -> None:
    torch.manual_seed(0)
    model = create_model("resnet20", **TINY, init="xavier", projection_bias=True, shortcut="B")
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert any(m.bias is not None for m in layers if isinstance(m, nn.Conv2d))  # the biased projections
    for m in layers:
        w = m.weight
        fan_in, fan_out = w[0].numel(), w.shape[0] * w[0, 0].numel()
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert m.weight.abs().max() <= bound and m.weight.abs().max() > 0.5 * bound, m
        assert m.bias is None or (m.bias == 0).all(), m


def test_torch_init_keeps_pytorchs_own_layer_defaults() -> None:
    """init=torch: what a net of plain nn.Conv2d / nn.Linear layers starts from (seed notebook 002)."""
    torch.manual_seed(0)
    ours = create_model("resnet20", **TINY, init="torch")
    torch.manual_seed(0)
    kaiming = create_model("resnet20", **TINY)
    for m in ours.modules():
        if isinstance(m, nn.Conv2d):  # kaiming_uniform(a=sqrt(5)): |w| <= 1 / sqrt(fan_in)
            fan_in = m.weight[0].numel()
            assert m.weight.abs().max() <= 1 / math.sqrt(fan_in)
    assert not torch.equal(ours.conv1.weight, kaiming.conv1.weight)
    torch.testing.assert_close(ours.fc.weight, kaiming.fc.weight)  # the head is PyTorch's in both


@pytest.mark.parametrize(("knob", "words"), [
    (dict(norm_eps=0.0), "norm_eps=0.0: must be a number > 0"),
    (dict(norm_momentum=0.999), None),  # a legal (if unusual) momentum: no error
    (dict(norm_momentum=1.5), "norm_momentum=1.5: must be in [0, 1] (PyTorch's convention: 1 - TF's decay)"),
    (dict(norm_scale="no"), "norm_scale=no: must be true or false"),
    (dict(init="he"), "init=he: must be one of kaiming, xavier, torch"),
])
def test_bad_knob_values_fail_with_one_line(knob: dict, words: str | None) -> None:
    if words is None:
        create_model("resnet20", **TINY, **knob)
        return
    with pytest.raises(ValueError) as err:
        create_model("resnet20", **TINY, **knob)
    assert str(err.value) == words
