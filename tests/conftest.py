import random

import numpy as np
import pytest
import torch

from translate import runtime
from translate.runtime import CpuInfo

# CI has 2 cores; more threads than that only add contention.
torch.set_num_threads(2)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` skip on a machine without a CUDA GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (tools/gpu_check.sh)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


# Two CPUs to pretend to run on: what `auto` means, and so the results, depend on the CPU.
AVX2 = CpuInfo("AMD EPYC", "AVX2", frozenset({"avx2", "fma"}))
NATIVE_BF16 = CpuInfo("Intel Xeon", "AVX512", frozenset({"avx512f", "avx512_bf16", "amx_bf16"}))


@pytest.fixture
def cpu(monkeypatch: pytest.MonkeyPatch):
    """Pretend to run on a given CPU; the once-per-process warning starts unsaid."""
    monkeypatch.setattr(runtime, "_warned", set())

    def use(info: CpuInfo) -> None:
        monkeypatch.setattr(runtime, "cpu_info", lambda: info)

    return use


@pytest.fixture(params=[AVX2, NATIVE_BF16], ids=["avx2", "native-bf16"])
def any_cpu(request: pytest.FixtureRequest, cpu) -> CpuInfo:
    """The test runs twice, as on an AVX2-only CPU (`auto` is fp32 for inference) and as on
    one with native bf16 (`auto` is bf16), whichever CPU this machine has."""
    cpu(request.param)
    return request.param


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def tiny_generator_file(tmp_path_factory):
    """A seeded 3->3 resnet generator file small enough to convert with in tests."""
    from translate.model_file import GeneratorSpec, save_generators

    path = tmp_path_factory.mktemp("model") / "g.safetensors"
    torch.manual_seed(0)
    spec = GeneratorSpec("resnet_6blocks", 3, 3, {"ngf": 4, "n_blocks": 1})
    save_generators(path, {"AtoB": (spec, spec.build())})
    return path
