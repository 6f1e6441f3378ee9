"""A translator as a data augmentation for albumentations and torchvision pipelines: apart
from :mod:`translate.inference.translator`, so that translating imports no albumentations."""

from __future__ import annotations

import os
from typing import Any

import albumentations as A
import numpy as np
import torch

from translate.inference.translator import Translator
from translate.models.model_file import LoadedModel


class TranslateTransform(A.ImageOnlyTransform):
    """Apply a translator with probability ``p``: in ``A.Compose`` or a torchvision pipeline.

    In albumentations it translates the ``image`` target (HWC uint8); called directly on a PIL
    image or tensor (torchvision style) it draws from torch's random generator, as
    ``torchvision.transforms.RandomApply`` does.
    """

    def __init__(
        self, translator: Translator | str | os.PathLike[str] | LoadedModel, p: float = 0.5
    ) -> None:
        super().__init__(p=p)
        if not isinstance(translator, Translator):
            translator = Translator.load(translator)
        self.translator = translator

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        """albumentations' hook: the translated image (HWC uint8 in, the same out)."""
        return self.translator(img)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and not kwargs:  # torchvision: transform(image)
            image = args[0]
            return self.translator(image) if torch.rand(1).item() < self.p else image
        return super().__call__(*args, **kwargs)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        """albumentations' hook: the constructor arguments that describe this transform."""
        return ("translator",)


__all__ = ["TranslateTransform"]
