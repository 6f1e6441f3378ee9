"""What the training tests share: a config for tiny networks (`tiny`), a quiet engine
(`make_engine`), a run trained in one go and resumed (`resumed_run`), the 16 px images of
conftest's `data` fixture (`smooth_image`) and a rank's environment (`join_as`)."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from translate.training.configure import from_dict
from translate.training.engine import Engine

SIZE = 16


def smooth_image(rng: np.random.Generator) -> np.ndarray:
    """A smooth random colour image: a few blobs, so crops and flips change it."""
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.kron(small, np.ones((SIZE // 4, SIZE // 4, 1), dtype=np.uint8))


def tiny(model: str, root: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A config dict for tiny networks on 16 px images; ``sections`` update it."""
    config: dict[str, Any] = {
        "model": model,
        "data": {
            "root": str(root),
            "preprocess": {"mode": "resize_and_crop", "load_size": 18, "crop_size": SIZE},
            "num_workers": 0,
            "val_size": 4,
        },
        "generator": (
            {"name": "unet", "options": {"ngf": 4, "num_downs": 4}}
            if model == "pix2pix"
            else {"name": "resnet", "options": {"ngf": 4, "n_blocks": 1}}
        ),
        "discriminator": {"options": {"ndf": 4, "n_layers": 2}},
        "schedule": {"epochs": 2, "decay_epochs": 2},
        "train": {"batch_size": 2, "max_steps": 3},
        "log": {"every": 1, "eval_every": 1000, "checkpoint_every": 1000, "tensorboard": False},
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return config


def make_engine(config: dict[str, Any], run_dir: Path, resume: bool = False) -> Engine:
    return Engine(from_dict(config), run_dir, resume=resume, progress=False)


def resumed_run(config: dict[str, Any], run_dir: Path, half: int) -> tuple[Engine, Engine]:
    """``config`` trained in one go, and trained for ``half`` steps then resumed to the end,
    in two folders under ``run_dir``; asserts that both end with identical state dicts."""
    full = make_engine(config, run_dir / "full")
    full.fit()
    stopped = copy.deepcopy(config)
    stopped["train"]["max_steps"] = half
    make_engine(stopped, run_dir / "half").fit()
    resumed = make_engine(config, run_dir / "half", resume=True)
    assert resumed.step == half
    resumed.fit()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    return full, resumed


def weights(t: Engine) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in t.model.state_dict().items()}


def join_as(rank: int, port: int) -> None:
    """This spawned process as rank ``rank`` of 2 on 127.0.0.1, one thread each."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
        LOCAL_RANK=str(rank),
    )  # fmt: skip
    torch.set_num_threads(1)
