"""translate: image-to-image translation with GANs (Pix2Pix, CycleGAN)."""

from __future__ import annotations

import importlib
from typing import Any

from .losses import GANLoss, feature_matching_loss, gradient_penalty
from .networks import build_discriminator, build_generator

__version__ = "0.1.0"

# The inference layer imports image I/O and data code; load it when first used.
_LAZY = {
    "Translator": "translate.inference.translator",
    "TranslateTransform": "translate.inference.translator",
    "convert_folder": "translate.inference.convert",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'translate' has no attribute {name!r}")


__all__ = [
    "GANLoss",
    "TranslateTransform",
    "Translator",
    "build_discriminator",
    "build_generator",
    "convert_folder",
    "feature_matching_loss",
    "gradient_penalty",
]
