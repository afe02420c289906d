"""ImageClassifier: weight-decay groups, metrics per number of classes, optimizer/scheduler wiring,
soft targets and test-time augmentation."""

from __future__ import annotations

import functools

import torch
from torchmetrics import MaxMetric

from resnet_exp.models import create_model
from resnet_exp.module import TTA, ImageClassifier, split_weight_decay, train_step_sums
from resnet_exp.schedules import Schedule


def tiny_model(num_classes: int = 10) -> torch.nn.Module:
    return create_model("resnet20", num_classes=num_classes, input_size=32, width=0.25)


def test_norm_weights_and_biases_get_no_weight_decay() -> None:
    model = tiny_model()
    decay, no_decay = split_weight_decay(model, decay_norm_and_bias=False)
    assert no_decay["weight_decay"] == 0.0 and "weight_decay" not in decay
    assert (decay["name"], no_decay["name"]) == ("weights", "norms_biases_no_decay")  # as loggers show them
    bn_and_bias = {id(p) for n, p in model.named_parameters() if "bn" in n or n.endswith(".bias")}
    assert {id(p) for p in no_decay["params"]} == bn_and_bias
    assert {id(p) for p in decay["params"]}.isdisjoint(bn_and_bias)
    (everything,) = split_weight_decay(model, decay_norm_and_bias=True)
    assert len(everything["params"]) == len(list(model.parameters()))


def test_optimizer_and_scheduler_come_from_their_factories() -> None:
    module = ImageClassifier(
        tiny_model(), optimizer=functools.partial(torch.optim.SGD, lr=0.1, weight_decay=5e-4),
        num_classes=10, scheduler=Schedule(functools.partial(torch.optim.lr_scheduler.StepLR, step_size=3),
                                           interval="step"))
    config = module.configure_optimizers()
    groups = config["optimizer"].param_groups
    assert [g["weight_decay"] for g in groups] == [5e-4, 0.0]
    assert config["lr_scheduler"]["interval"] == "step"
    assert isinstance(config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)
    assert isinstance(ImageClassifier(tiny_model(), optimizer=torch.optim.Adam,
                                      num_classes=10).configure_optimizers(), torch.optim.Adam)


def test_top5_accuracy_only_with_more_than_ten_classes() -> None:
    ten = ImageClassifier(tiny_model(10), optimizer=torch.optim.SGD, num_classes=10)
    hundred = ImageClassifier(tiny_model(100), optimizer=torch.optim.SGD, num_classes=100)
    assert set(ten.test_metrics.keys()) == {"test/acc"}
    assert set(hundred.test_metrics.keys()) == {"test/acc", "test/acc_top5"}


def test_hyperparameters_hold_only_plain_values() -> None:
    module = ImageClassifier(tiny_model(), optimizer=torch.optim.SGD, num_classes=10,
                             scheduler=Schedule(torch.optim.lr_scheduler.StepLR, warmup="linear", warmup_length=2),
                             example_input_shape=[3, 32, 32], tta=TTA.flip)
    assert module.hparams["example_input_shape"] == (3, 32, 32)
    assert set(module.hparams) == {"num_classes", "label_smoothing", "decay_norm_and_bias", "example_input_shape",
                                   "tta"}
    assert type(module.hparams["tta"]) is str  # the enum member would not load with weights_only


def test_best_val_acc_is_a_plain_value_in_the_checkpoint(tmp_path) -> None:
    module = ImageClassifier(tiny_model(), optimizer=torch.optim.SGD, num_classes=10)
    module.val_acc_best = torch.tensor(0.625)
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    assert checkpoint["metric_states"]["val_acc_best"] == 0.625
    torch.save(checkpoint, tmp_path / "c.ckpt")
    loaded = torch.load(tmp_path / "c.ckpt", weights_only=True)
    fresh = ImageClassifier(tiny_model(), optimizer=torch.optim.SGD, num_classes=10)
    fresh.on_load_checkpoint(loaded)
    assert float(fresh.val_acc_best) == 0.625 and fresh.val_acc_best.dtype == torch.float32


def test_checkpoints_holding_a_max_metric_state_still_load() -> None:
    """Checkpoints that kept the best as a torchmetrics MaxMetric's state (update count and state)."""
    best = MaxMetric()
    best.update(torch.tensor(0.75))
    best.update(torch.tensor(0.5))
    state = {"update_count": best.update_count, **{k: v.detach().cpu() for k, v in best.metric_state.items()}}
    module = ImageClassifier(tiny_model(), optimizer=torch.optim.SGD, num_classes=10)
    module.on_load_checkpoint({"metric_states": {"val_acc_best": state, "train_sums": None}})
    assert float(module.val_acc_best) == 0.75
    fresh = MaxMetric()
    module.on_load_checkpoint({"metric_states": {"val_acc_best": {"update_count": 0, **fresh.metric_state}}})
    assert module.val_acc_best is None
    module.on_load_checkpoint({})  # a checkpoint of a run that never validated
    assert module.val_acc_best is None


def test_restored_values_follow_the_module_to_its_device() -> None:
    """Lightning restores a checkpoint before it moves the module: on_fit_start moves them along
    (the meta device stands in for a GPU)."""
    module = ImageClassifier(tiny_model(), optimizer=torch.optim.SGD, num_classes=10)
    module.on_load_checkpoint({"metric_states": {"val_acc_best": 0.5, "train_sums": torch.ones(4)}})
    module.to("meta")
    module.on_fit_start()
    assert module.train_sums.device.type == "meta" and module.train_sums.dtype == torch.float64
    assert module.val_acc_best.device.type == "meta"


def test_tta_flip_logits_are_the_mean_of_the_two_passes() -> None:
    model = tiny_model().eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        plain, flipped = model(x), model(x.flip(3))
        module = ImageClassifier(model, optimizer=torch.optim.SGD, num_classes=10, tta="flip")
        assert torch.equal(module.eval_logits(x), (plain + flipped) / 2)
        assert not torch.equal(plain, flipped)  # the flip changes the logits (the test would prove nothing)
        assert torch.equal(ImageClassifier(model, optimizer=torch.optim.SGD, num_classes=10).eval_logits(x), plain)


def test_validation_and_test_score_the_tta_logits() -> None:
    model = tiny_model().eval()
    module = ImageClassifier(model, optimizer=torch.optim.SGD, num_classes=10, tta="flip")
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    with torch.no_grad():
        module.validation_step((x, y), 0)
        module.test_step((x, y), 0)
        logits = (model(x) + model(x.flip(3))) / 2
    expected_acc = (logits.argmax(1) == y).float().mean()
    torch.testing.assert_close(module.val_metrics.compute()["val/acc"], expected_acc)
    torch.testing.assert_close(module.test_metrics.compute()["test/acc"], expected_acc)
    torch.testing.assert_close(module.val_loss.compute(), torch.nn.functional.cross_entropy(logits, y))


def test_soft_targets_train_with_their_probabilities_and_count_their_dominant_label() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 0.5]])
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.6, 0.4, 0.0], [0.0, 0.2, 0.8]])  # dominant labels 0, 0, 2
    module = ImageClassifier(tiny_model(3), optimizer=torch.optim.SGD, num_classes=3, label_smoothing=0.1)
    loss = module.criterion(logits, soft)
    smoothed = soft * 0.9 + 0.1 / 3
    torch.testing.assert_close(loss, -(smoothed * logits.log_softmax(1)).sum(1).mean())
    loss_sum, correct, _, n = train_step_sums(logits, soft, loss, top5=False).tolist()
    assert (correct, n) == (1.0, 3.0)  # only the first image's prediction (0) is its dominant label
    assert train_step_sums(logits, soft.argmax(1), loss, top5=False)[1] == 1.0
