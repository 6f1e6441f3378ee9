"""The albumentations side of preprocessing: the geometric transform a pair shares and the
input-only augmentations of the config. Apart from :mod:`translate.data.transforms`, so that
reading a :class:`Preprocess` (``translate info``, config checks) does not import
albumentations (seconds)."""

from __future__ import annotations

from typing import Any

import albumentations as A
import cv2
import numpy as np

from translate.data.transforms import Preprocess, build_augment


class _ScaleWidth(A.DualTransform):
    """Resize so the width is ``width`` (at least ``min_height`` tall), keeping the aspect."""

    def __init__(self, width: int, min_height: int) -> None:
        super().__init__(p=1.0)
        self.width = width
        self.min_height = min_height

    def _resize(self, img: np.ndarray, interpolation: int) -> np.ndarray:
        h, w = img.shape[:2]
        if w == self.width and h >= self.min_height:
            return img
        new_h = max(self.min_height, round(h * self.width / w))
        out = cv2.resize(img, (self.width, new_h), interpolation=interpolation)
        return out[:, :, None] if out.ndim < img.ndim else out  # cv2 drops a single channel

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        return self._resize(img, cv2.INTER_CUBIC)

    def apply_to_mask(self, mask: np.ndarray, **params: Any) -> np.ndarray:
        """Label maps (a ``mask``) by nearest neighbour: ids are never interpolated."""
        return self._resize(mask, cv2.INTER_NEAREST)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("width", "min_height")


def _crop(size: int, train: bool) -> list[A.BasicTransform]:
    pad = A.PadIfNeeded(size, size, border_mode=cv2.BORDER_REFLECT_101)
    return [pad, A.RandomCrop(size, size) if train else A.CenterCrop(size, size)]


def build_transform(pre: Preprocess, train: bool = True) -> A.Compose:
    """The geometric transform shared by both images of a pair (``target`` is the second),
    and by an image and its label map, passed as ``mask``: ids are resized by nearest
    neighbour and padded by reflecting whole pixels, never interpolated."""
    steps: list[A.BasicTransform] = []
    if pre.mode == "resize_and_crop":
        steps += [
            A.Resize(
                pre.load_size,
                pre.load_size,
                interpolation=cv2.INTER_CUBIC,
                mask_interpolation=cv2.INTER_NEAREST,
            )  # fmt: skip
        ]
        steps += _crop(pre.crop_size, train)
    elif pre.mode == "crop":
        steps += _crop(pre.crop_size, train)
    elif pre.mode == "scale_width":
        steps += [_ScaleWidth(pre.load_size, pre.crop_size)]
    elif pre.mode == "scale_width_and_crop":
        steps += [_ScaleWidth(pre.load_size, pre.crop_size)] + _crop(pre.crop_size, train)
    if pre.mode in ("scale_width", "none"):
        m = pre.size_multiple
        steps += [
            A.PadIfNeeded(
                pad_height_divisor=m,
                pad_width_divisor=m,
                min_height=None,
                min_width=None,
                border_mode=cv2.BORDER_REFLECT_101,
                position="top_left",
            )
        ]
    if train and pre.flip:
        steps.append(A.HorizontalFlip(p=0.5))
    if train and pre.rotate:  # 0 to 3 quarter turns, each as likely
        steps.append(A.RandomRotate90(p=1.0))
    return A.Compose(steps, additional_targets={"target": "image"})


def build_input_augment(pre: Preprocess) -> A.Compose | None:
    """Extra transforms from the config, applied to the input image only."""
    if not pre.input_augment:
        return None
    return A.Compose(
        [
            build_augment(s, f"preprocess.input_augment[{i}]")
            for i, s in enumerate(pre.input_augment)
        ]
    )
