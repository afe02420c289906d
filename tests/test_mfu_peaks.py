"""MFU's peak: every Lightning precision string maps to the right peak kind, every GPU name to its
own model (L40S is not L4), and anything unknown gives no MFU rather than a wrong one. No GPU
needed: the lookups take the device name and the precision as values."""

from __future__ import annotations

import typing

import pytest
import torch

from resnet_exp import speed
from resnet_exp.callbacks.results import throughput
from resnet_exp.speed import AUTOCAST, PEAK_TFLOPS, PRECISIONS, gpu_model, gpu_peak_tflops, peak_kind

# torch.cuda.get_device_name as it reads on each model (several forms of one model where they exist).
NAMES = [
    ("NVIDIA L4", "L4"),
    ("NVIDIA L40", "L40"),
    ("NVIDIA L40S", "L40S"),
    ("NVIDIA A100-SXM4-40GB", "A100"),
    ("NVIDIA A100-SXM4-80GB", "A100"),
    ("NVIDIA A100-PCIE-40GB", "A100"),
    ("NVIDIA A100 80GB PCIe", "A100"),
    ("NVIDIA H100 80GB HBM3", "H100 SXM"),
    ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA H100 NVL", "H100 NVL"),
    ("NVIDIA H200", "H200"),
    ("NVIDIA H200 NVL", "H200 NVL"),
    ("NVIDIA GH200 480GB", "GH200"),
]
UNKNOWN_NAMES = [
    "NVIDIA A10", "NVIDIA A10G", "NVIDIA A40", "NVIDIA L20", "NVIDIA GeForce RTX 4090", "Tesla T4",
    "NVIDIA H100",  # which H100? the form factors differ by 25%
    "NVIDIA H100 80GB HBM3 MIG 1g.10gb",  # a slice of the chip
    "NVIDIA H800", "", None,
]
# Lightning precision -> the peak kind (tf32 off), and the autocast dtype.
KINDS = {
    32: "fp32", "32": "fp32", "32-true": "fp32",
    64: "fp64", "64": "fp64", "64-true": "fp64",
    16: "fp16", "16": "fp16", "16-mixed": "fp16", "16-true": "fp16",
    "bf16": "bf16", "bf16-mixed": "bf16", "bf16-true": "bf16",
    "transformer-engine": None, "transformer-engine-float16": None,
}


def lightning_precisions() -> set[str | int]:
    """Every value pytorch_lightning.Trainer(precision=...) accepts (the library's own type)."""
    from lightning_fabric.plugins.precision import precision

    def flat(tp: typing.Any) -> set[str | int]:
        args = typing.get_args(tp)
        return {tp} if not args else set().union(*(flat(a) for a in args))
    return flat(precision._PRECISION_INPUT)


def test_every_lightning_precision_is_mapped() -> None:
    assert set(KINDS) == set(PRECISIONS) == lightning_precisions()


@pytest.mark.parametrize("precision", list(KINDS), ids=repr)
def test_precision_picks_its_peak_kind(precision: str | int) -> None:
    kind = KINDS[precision]
    assert peak_kind(precision, tf32=False) == kind
    # TF32 changes only the float32 peak: true fp16/bf16 and fp64 do not use it.
    assert peak_kind(precision, tf32=True) == ("tf32" if kind == "fp32" else kind)
    expected = PEAK_TFLOPS["H100 SXM"].get(kind) if kind else None
    assert gpu_peak_tflops("NVIDIA H100 80GB HBM3", precision, tf32=False) == expected
    mixed = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(kind) if "true" not in str(precision) else None
    assert AUTOCAST.get(precision) == mixed


def test_unknown_precision_gives_no_peak() -> None:
    assert peak_kind("8-mixed", tf32=True) is None and peak_kind(None, tf32=False) is None
    assert gpu_peak_tflops("NVIDIA H100 80GB HBM3", "fp8", tf32=True) is None


@pytest.mark.parametrize(("name", "model"), NAMES)
def test_device_name_picks_its_own_model(name: str, model: str) -> None:
    assert gpu_model(name) == model
    assert gpu_peak_tflops(name, "bf16-mixed", tf32=True) == PEAK_TFLOPS[model]["bf16"]


@pytest.mark.parametrize("name", UNKNOWN_NAMES)
def test_unknown_device_gives_no_peak(name: str | None) -> None:
    assert gpu_model(name) is None
    assert all(gpu_peak_tflops(name, p, tf32=True) is None for p in KINDS)


def test_ada_parts_are_told_apart() -> None:
    """The L40S has three times the L4's tensor peak: a substring match made its MFU 3x too high."""
    l4, l40, l40s = (gpu_peak_tflops(f"NVIDIA {m}", "bf16-mixed", tf32=False) for m in ("L4", "L40", "L40S"))
    assert (l4, l40, l40s) == (121.0, 181.05, 362.05)


@pytest.mark.parametrize(("name", "precision", "tf32", "peak"), [
    ("NVIDIA L40S", "bf16", True, 362.05),  # Lightning's alias of bf16-mixed
    ("NVIDIA L40S", "bf16-true", True, 362.05),
    ("NVIDIA A100-SXM4-80GB", "16-true", True, 312.0),
    ("NVIDIA A100-SXM4-80GB", "32-true", True, 156.0),  # TF32 on
    ("NVIDIA A100-SXM4-80GB", "32-true", False, 19.5),
    ("NVIDIA H100 PCIe", 64, False, 51.2),
    ("NVIDIA L4", "64-true", False, None),  # no fp64 figure on its data sheet
    ("NVIDIA L4", "transformer-engine", False, None),
])
def test_results_json_mfu_uses_the_right_peak(monkeypatch: pytest.MonkeyPatch, name: str,
                                              precision: str | int, tf32: bool, peak: float | None) -> None:
    """results.json's throughput block on a (pretended) CUDA device of each kind."""
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    plan = speed.SpeedPlan(cuda=True, precision=str(precision), cudnn_benchmark=True, channels_last=True,
                           tf32=tf32, compile=False)
    block = throughput({"images_per_s": 1000.0}, 10**9, plan, torch.device("cuda"))
    assert block["peak_tflops"] == peak
    assert block["mfu"] == (pytest.approx(1.0 / peak, rel=1e-5) if peak else None)  # 1 TFLOP/s achieved
    assert throughput({"images_per_s": 1000.0}, 10**9, plan, torch.device("cpu"))["mfu"] is None
