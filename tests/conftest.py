import random

import numpy as np
import pytest
import torch

# CI has 2 cores; more threads than that only add contention.
torch.set_num_threads(2)


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
