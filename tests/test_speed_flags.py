"""`speed.tf32` switches TF32 for matmuls and cuDNN convolutions alike (checked on CPU)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
import torch

from resnet_exp import speed


@pytest.fixture
def restore_backend_flags() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved = (torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32,
                 torch.backends.cudnn.allow_tf32)
        yield
        torch.set_float32_matmul_precision(saved[0])
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[1:]


@pytest.mark.parametrize("tf32", [False, True])
def test_tf32_switch_sets_matmul_and_cudnn(tf32: bool, restore_backend_flags: None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = not tf32
        speed.plan({"accelerator": "cpu"}, {"tf32": tf32}).apply_backend()
        assert torch.backends.cudnn.allow_tf32 is tf32
        assert torch.backends.cuda.matmul.allow_tf32 is tf32
        assert torch.get_float32_matmul_precision() == ("high" if tf32 else "highest")
