"""Evaluation: paired L1/PSNR/SSIM, diversity and FID/KID of image sets and of a model's
outputs, a label model's mIoU and diversity under noise, in L1 or LPIPS (the library of
``translate evaluate``, whose command is ``translate.apps.evaluate``). Imports ``inference``
and the layers below it; never ``training`` or ``conversion``."""

from __future__ import annotations

from translate.core.lazy import lazy_attributes

# Loaded when first used, as in translate/__init__.py: they import torch and torchvision,
# which `translate evaluate --help` (translate.apps.evaluate, inside this package) never
# needs.
_LAZY = {
    "InceptionFeatures": "translate.evaluation.inception",
    "fid": "translate.evaluation.inception",
    "frechet_distance": "translate.evaluation.inception",
    "kid": "translate.evaluation.inception",
    "load_inception": "translate.evaluation.inception",
    "LPIPS": "translate.evaluation.lpips",
    "load_lpips": "translate.evaluation.lpips",
    "PairedScores": "translate.evaluation.scores",
    "SetScores": "translate.evaluation.scores",
    "folder_images": "translate.evaluation.scores",
    "label_dataset": "translate.evaluation.scores",
    "label_model_images": "translate.evaluation.scores",
    "model_images": "translate.evaluation.scores",
    "noise_diversity": "translate.evaluation.scores",
    "paired_folder_images": "translate.evaluation.scores",
    "score_pairs": "translate.evaluation.scores",
    "score_sets": "translate.evaluation.scores",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = sorted(_LAZY)
