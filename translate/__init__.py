"""translate: image-to-image translation with GANs (Pix2Pix, CycleGAN, CUT/FastCUT, SinCUT,
distillation): training, folder and video conversion, a Python API, a web page."""

from __future__ import annotations

from translate.core.lazy import lazy_attributes

__version__ = "0.1.0"

# Loaded when first used: they import torch (seconds), which `translate --help` and
# `--version` never need.
_LAZY = {
    "GANLoss": "translate.training.losses",
    "feature_matching_loss": "translate.training.losses",
    "gradient_penalty": "translate.training.losses",
    "build_discriminator": "translate.networks",
    "build_generator": "translate.networks",
    "Translator": "translate.inference.translator",
    "TranslateTransform": "translate.inference.transform",
    "convert_folder": "translate.conversion.convert",
    "ConvertOptions": "translate.conversion.convert",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "ConvertOptions",
    "GANLoss",
    "TranslateTransform",
    "Translator",
    "build_discriminator",
    "build_generator",
    "convert_folder",
    "feature_matching_loss",
    "gradient_penalty",
]
