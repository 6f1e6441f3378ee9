"""translate.core.runtime: torchrun ranks, devices, what `auto` means, bf16 on CPUs without it."""

from __future__ import annotations

import warnings

import pytest
import torch
from click.testing import CliRunner
from conftest import AVX2, NATIVE_BF16

from translate.cli import main
from translate.core import runtime
from translate.core.runtime import (
    CpuInfo,
    Precision,
    Ranks,
    SlowPrecisionWarning,
    resolve_device,
    resolve_precision,
)
from translate.data.images import write_image

CPU = torch.device("cpu")


def test_ranks_from_env() -> None:
    assert Ranks.from_env({}) == Ranks(0, 1, 0) and Ranks().main
    ranks = Ranks.from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (ranks.rank, ranks.world_size, ranks.local_rank, ranks.main) == (3, 4, 1, False)
    with pytest.raises(ValueError, match="RANK=2.*WORLD_SIZE=2"):
        Ranks.from_env({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="must be integers"):
        Ranks.from_env({"WORLD_SIZE": "two"})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_auto_device_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "mps_available", lambda: True)
    assert resolve_device("auto", use="train") == CPU  # training never picks MPS
    assert resolve_device("auto").type == "mps"  # inference does
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


def test_auto_precision_per_use_and_device(cpu, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu(AVX2)
    assert resolve_precision("auto", CPU, "train").name == "fp32"
    assert resolve_precision("auto", CPU, "inference").name == "fp32"
    cpu(NATIVE_BF16)  # the same detection picks bf16 for training and inference
    assert resolve_precision("auto", CPU, "train").name == "bf16"
    assert resolve_precision("auto", CPU, "inference").name == "bf16"
    assert resolve_precision("auto", torch.device("mps"), "inference").name == "fp32"
    gpu = torch.device("cuda", 0)
    for supported, train in ((True, "bf16"), (False, "fp16")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda s=supported: s)
        assert resolve_precision("auto", gpu, "train").name == train
        assert resolve_precision("auto", gpu, "inference").name == "fp16"
    with pytest.raises(ValueError, match="--precision: this GPU does not support bf16"):
        resolve_precision("bf16", gpu)


def test_bad_precisions_name_the_key() -> None:
    with pytest.raises(ValueError, match="'train.precision': fp16 needs a CUDA device"):
        resolve_precision("fp16", CPU, "train", key="'train.precision'")
    with pytest.raises(ValueError, match="--precision: 'int8' is not one of auto, fp32"):
        resolve_precision("int8", CPU)


def test_one_dtype_table_drives_autocast() -> None:
    conv = torch.nn.Conv2d(3, 3, 3)
    x = torch.rand(1, 3, 8, 8)
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        with Precision(name, "cpu").autocast():
            assert conv(x).dtype == dtype
    assert Precision("fp16", "cuda").grad_scaling and not Precision("bf16", "cuda").grad_scaling


def test_emulated_bf16_warns_once_naming_the_cpu(cpu) -> None:
    cpu(AVX2)
    with pytest.warns(SlowPrecisionWarning) as caught:
        resolve_precision("bf16", CPU)
        resolve_precision("bf16", CPU, "train")
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "AMD EPYC" in message and "AVX2" in message and "10-15x slower" in message


def test_native_bf16_does_not_warn(cpu) -> None:
    cpu(NATIVE_BF16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision("bf16", CPU).name == "bf16"


def test_native_bf16_detection() -> None:
    assert not AVX2.native_bf16 and NATIVE_BF16.native_bf16
    assert CpuInfo("Graviton3", "SVE256", frozenset({"sve", "bf16"})).native_bf16
    here = runtime.cpu_info()
    assert here.capability == torch.backends.cpu.get_cpu_capability() and here.model


def test_convert_with_bf16_on_an_avx2_cpu_warns_once_on_stderr(cpu, tmp_path) -> None:
    cpu(AVX2)
    for i in range(3):
        write_image(tmp_path / "in" / f"{i}.png", torch.zeros(16, 16, 3, dtype=torch.uint8).numpy())
    args = ["convert", "demo", str(tmp_path / "in"), str(tmp_path / "out"), "--no-progress"]
    result = CliRunner().invoke(main, [*args, "--precision", "bf16", "--batch-size", "1"])
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warned == [
        "warning: --precision: bf16 on a CPU without native bf16 (AMD EPYC, torch capability "
        "AVX2, no native bf16): expect it to run 10-15x slower than fp32; use fp32 or auto"
    ]
    assert "warning" not in result.stdout
