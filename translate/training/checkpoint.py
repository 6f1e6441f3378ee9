"""Training-state checkpoints: ``checkpoints/state_<step>.pt``, written atomically, last K kept."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from translate.core import torch_file
from translate.core.atomic import atomic_open, atomic_write_text
from translate.core.run_dir import RunDir
from translate.training.config import Config, dump_config


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) generator states, as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(
    run_dir: str | os.PathLike[str], step: int, state: dict[str, Any], keep: int
) -> Path:
    """Write ``state_<step>.pt`` atomically, then delete all but the newest ``keep``."""
    run = RunDir(run_dir)
    path = run.state(step)
    # Through a file object: a full disk then raises OSError(ENOSPC), where torch.save on a
    # path raises a RuntimeError about zip positions.
    with atomic_open(path) as f:
        torch.save(state, f)
    for old in run.states()[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A state file, read by :func:`translate.core.torch_file.load` (no code runs from the file,
    its sizes are checked before anything is allocated; errors are one line)."""
    return torch_file.load(path, kind="training checkpoint")


def load_newest_state(run_dir: str | os.PathLike[str]) -> tuple[Path, dict[str, Any], list[str]]:
    """The newest state file that loads, its state, and why each newer one was skipped
    (a run killed mid-write or a damaged disk must not block resuming from an older one)."""
    skipped = []
    for path in reversed(RunDir(run_dir).states()):
        try:
            return path, load_state(path), skipped
        except ValueError as exc:
            skipped.append(str(exc))
    if not skipped:
        raise ValueError(f"{run_dir}: no checkpoints/state_<step>.pt to resume from")
    raise ValueError(f"{run_dir}: no checkpoint loads: " + "; ".join(skipped))


def latest_state(run_dir: str | os.PathLike[str]) -> Path:
    paths = RunDir(run_dir).states()
    if not paths:
        raise ValueError(f"{run_dir}: no checkpoints/state_<step>.pt to resume from")
    return paths[-1]


class Checkpointer:
    """A run directory's training states and its ``config.yaml``: one run per directory,
    resumed from the newest state that loads."""

    def __init__(self, run_dir: Path, resume: bool) -> None:
        self.run_dir = run_dir
        self.run = RunDir(run_dir)
        if not resume:
            self.refuse_existing()

    def refuse_existing(self) -> None:
        """A new run may not start in a directory that holds one."""
        if self.run.states():
            raise ValueError(
                f"{self.run_dir}: already holds a run; continue it with --resume or give "
                "another --run-dir"
            )

    def save(self, step: int, state: dict[str, Any], keep: int) -> Path:
        return save_state(self.run_dir, step, state, keep)

    def newest(self, announce: bool = True) -> tuple[dict[str, Any], Path]:
        """The newest readable state and its file; ``announce`` names the ones skipped."""
        path, state, skipped = load_newest_state(self.run_dir)
        if announce:
            for reason in skipped:
                tqdm.write(f"skipped {reason}; resuming from {path.name}", file=sys.stderr)
        return state, path

    def write_config(self, config: Config) -> None:
        """The resolved config, as the run trains it (a resume reads it back)."""
        atomic_write_text(self.run.config, dump_config(config))
