"""Training: YAML configs, the engine, the trainers (Pix2Pix, CycleGAN, CUT/FastCUT,
distillation), checkpoints, run reports."""

from __future__ import annotations

import importlib
from typing import Any

# Loaded when first used, as in translate/__init__.py: they import torch, which
# `translate train --help` (translate.training.cli, inside this package) never needs.
_LAZY = {
    "Config": "translate.training.config",
    "from_dict": "translate.training.configure",
    "load_config": "translate.training.configure",
    "Trainer": "translate.training.engine",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'translate.training' has no attribute {name!r}")


__all__ = ["Config", "Trainer", "from_dict", "load_config"]
