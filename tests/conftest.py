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
