"""The CUDA paths no CPU run exercises: fused Adam, channels_last, bf16 autocast and the fp16
grad scaler in a training run, and the free-memory figure the memory budget reads. Marked
``cuda``: they skip without a GPU; tools/gpu_check.sh runs them on one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from training_helpers import make_engine, tiny

from translate.core.runtime import free_memory

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_training_steps_on_cuda(data: Path, tmp_path: Path, precision: str) -> None:
    config = tiny("pix2pix", data, train={"device": "cuda", "precision": precision})
    t = make_engine(config, tmp_path / "run")
    assert t.device.type == "cuda" and t.runtime.channels_last
    before = {k: v.detach().clone() for k, v in t.model.named_parameters()}
    t.fit()
    assert t.step == 3
    after = dict(t.model.named_parameters())
    assert all(torch.isfinite(p).all() for p in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the updates happened
    if precision == "fp16":  # the scaler ran: its scale is a finite positive number
        scale = t.stepper.scalers["G"].get_scale()
        assert 0 < scale < float("inf")


def test_free_memory_on_cuda() -> None:
    device = torch.device("cuda", 0)
    free, total = torch.cuda.mem_get_info(device)
    assert 0 < free_memory(device) <= total
