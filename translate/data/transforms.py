"""Preprocessing: the reference's resize/crop/flip modes (built on albumentations in
:mod:`translate.data.augment`), the symmetries of a square crop, tensor conversion.

torch, cv2 and albumentations (seconds to import) are imported by the functions that use
them: :class:`Preprocess` is read where none is needed (``translate info``, config checks).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import albumentations as A
    import torch

PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
UNCROPPED_MODES = ("scale_width", "none")  # keep each image's own shape, rarely a square


@dataclass
class Preprocess:
    """How training images are resized, cropped and flipped (YAML-friendly fields)."""

    # resize_and_crop, crop, scale_width, scale_width_and_crop or none (pad to size_multiple)
    mode: str = "resize_and_crop"
    load_size: int = 286  # resize to this (the width, for the scale_width modes)
    crop_size: int = 256  # then a random crop of this side (centred at validation); SR: HR pixels
    flip: bool = True  # random horizontal flips, the same for both images of a pair
    # random quarter turns as well (with flip: all 8 symmetries of a square); square crops
    # only (not modes scale_width, none); on by default for model sr
    rotate: bool = False
    size_multiple: int = 4  # modes none and scale_width: pad each side to a multiple of this
    # albumentations transforms on the input only, e.g. [{name: ColorJitter, brightness: 0.2}]
    input_augment: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.mode not in PREPROCESS_MODES:
            raise ValueError(f"preprocess.mode: {self.mode!r} is not one of {PREPROCESS_MODES}")
        for name in ("load_size", "crop_size", "size_multiple"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"preprocess.{name}: must be a positive integer, got {value!r}")
        if self.mode in ("resize_and_crop", "scale_width_and_crop") and (
            self.crop_size > self.load_size
        ):
            raise ValueError(
                f"preprocess.crop_size: {self.crop_size} is larger than load_size {self.load_size}"
            )
        for name in ("flip", "rotate"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValueError(f"preprocess.{name}: must be true or false, got {value!r}")
        if self.rotate and self.mode in UNCROPPED_MODES:
            raise ValueError(
                f"preprocess.rotate: a quarter turn changes the shape of the images mode "
                f"{self.mode!r} keeps whole (it turns square crops only); set rotate: false "
                "(model sr turns it on by default) or a cropping mode"
            )
        for i, spec in enumerate(self.input_augment):
            build_augment(spec, f"preprocess.input_augment[{i}]")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocess:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"preprocess: unknown key(s) {unknown}; expected {sorted(names)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def build_augment(spec: dict[str, Any], where: str) -> A.BasicTransform:
    """The albumentations transform a config entry (``{name: ColorJitter, ...}``) names;
    ``ValueError`` naming ``where`` when there is none or its parameters are refused."""
    import albumentations as A  # here: only a config with input_augment needs it (seconds)

    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"{where}: needs a 'name' key naming an albumentations transform")
    params = {k: v for k, v in spec.items() if k != "name"}
    cls = getattr(A, str(spec["name"]), None)
    if cls is None or not isinstance(cls, type):
        raise ValueError(f"{where}: albumentations has no transform {spec['name']!r}")
    try:
        return cls(**params)
    except Exception as exc:
        raise ValueError(f"{where}: bad parameters for {spec['name']}: {exc}") from exc


class ScaledPairTransform:
    """The geometric transform of a pair whose target is ``scale`` times the image (an
    LR/HR pair): resize and crop at corresponding positions, sizes counted in target (HR)
    pixels, the image's box ``1/scale`` of the target's; one flip and turn for both. Called
    as ``transform(image=, target=)``, as the shared :func:`build_transform`.

    ``multiple``: what ``crop_size`` must divide by (the scale times the generator's size
    multiple; default the scale). A crop never reaches past the image: the dataset refuses
    smaller images up front, from their headers."""

    MODES = ("resize_and_crop", "crop", "none")

    def __init__(
        self, pre: Preprocess, scale: int, train: bool = True, multiple: int | None = None
    ) -> None:
        if pre.mode not in self.MODES:
            raise ValueError(
                f"preprocess.mode: {pre.mode!r} does not keep a scale-{scale} pair aligned; "
                f"use one of {', '.join(self.MODES)}"
            )
        check_hr_crop(pre, multiple or scale)
        if pre.mode == "resize_and_crop" and pre.load_size % scale:
            raise ValueError(
                f"config key 'data.preprocess.load_size': {pre.load_size} HR pixels is not a "
                f"multiple of the scale {scale}; use {max(scale, pre.load_size // scale * scale)}"
            )
        self.pre, self.scale, self.train = pre, scale, train
        self.rng = random.Random()

    def set_random_state(self, _np_rng: np.random.Generator, py_rng: random.Random) -> None:
        """Seed the crop, flip and turn, as ``A.Compose.set_random_state`` does (SeededItems)."""
        self.rng = py_rng

    def __call__(self, image: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
        pre, s = self.pre, self.scale
        if pre.mode == "resize_and_crop":
            image, target = _resize(image, pre.load_size // s), _resize(target, pre.load_size)
        if pre.mode == "none":
            m = pre.size_multiple
            size = (-(-image.shape[0] // m) * m, -(-image.shape[1] // m) * m)
            image, target = _pad(image, size), _pad(target, (size[0] * s, size[1] * s))
        else:
            c = pre.crop_size // s
            top, left = crop_origin(*image.shape[:2], c, self.rng if self.train else None)
            image = image[top : top + c, left : left + c]
            target = target[top * s : (top + c) * s, left * s : (left + c) * s]
        if self.train:
            flip, turns = draw_symmetry(pre, self.rng)
            image, target = apply_symmetry(image, flip, turns), apply_symmetry(target, flip, turns)
        return {"image": np.ascontiguousarray(image), "target": np.ascontiguousarray(target)}


def check_hr_crop(pre: Preprocess, multiple: int) -> None:
    """Refuse a ``crop_size`` (HR pixels) whose LR side would not be whole or not a size the
    generator takes: ``multiple`` is the scale times the generator's size multiple."""
    if pre.mode in ("crop", "resize_and_crop") and pre.crop_size % multiple:
        raise ValueError(
            f"config key 'data.preprocess.crop_size': {pre.crop_size} HR pixels is not a "
            f"multiple of {multiple} (the scale times the generator's size multiple); use "
            f"{max(multiple, pre.crop_size // multiple * multiple)}"
        )


def crop_origin(height: int, width: int, size: int, rng: random.Random | None) -> tuple[int, int]:
    """(top, left) of a ``size`` square of a ``height`` x ``width`` image: drawn from ``rng``,
    or the centre without one."""
    room = height - size, width - size
    if min(room) < 0:  # datasets refuse these up front, by header; this guards direct use
        raise ValueError(f"a {width}x{height} image is smaller than its {size} px crop")
    if rng is None:
        return room[0] // 2, room[1] // 2
    return rng.randint(0, room[0]), rng.randint(0, room[1])


def draw_symmetry(pre: Preprocess, rng: random.Random) -> tuple[bool, int]:
    """A random horizontal flip (when ``pre.flip``) and number of quarter turns (when
    ``pre.rotate``) for :func:`apply_symmetry`; with both, each of the 8 symmetries of a
    square is as likely."""
    flip = pre.flip and rng.random() < 0.5
    return flip, rng.randrange(4) if pre.rotate else 0


def apply_symmetry(image: np.ndarray, flip: bool, turns: int) -> np.ndarray:
    """An HWC image (a crop: cheap) mirrored left-right if ``flip``, then turned ``turns``
    quarter turns anticlockwise; a view, copied once when it becomes a tensor."""
    return np.rot90(image[:, ::-1] if flip else image, turns)


def _resize(image: np.ndarray, side: int) -> np.ndarray:
    import cv2

    out = cv2.resize(image, (side, side), interpolation=cv2.INTER_CUBIC)
    return out[:, :, None] if out.ndim == 2 else out


def _pad(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Reflect-pad the bottom and right of an HWC image to ``size``."""
    import cv2

    bottom, right = size[0] - image.shape[0], size[1] - image.shape[1]
    if bottom <= 0 and right <= 0:
        return image
    out = cv2.copyMakeBorder(image, 0, max(bottom, 0), 0, max(right, 0), cv2.BORDER_REFLECT_101)
    return out[:, :, None] if out.ndim == 2 else out


def zoom_box(
    height: int, width: int, size: int, scale: tuple[float, float], rng: random.Random
) -> tuple[int, int, int]:
    """A random square of the image to show as a ``size`` crop at a zoom drawn uniformly
    from ``scale`` (1: the image's own pixels; 0.5: twice the side, shrunk): ``(top, left,
    side)``. Zooms too far out for the image stop at its shorter side."""
    zoom = rng.uniform(*scale)
    side = min(max(1, round(size / zoom)), height, width)
    return rng.randint(0, height - side), rng.randint(0, width - side), side


def zoom_crop(image: np.ndarray, box: tuple[int, int, int], size: int) -> np.ndarray:
    """The square ``box`` (:func:`zoom_box`) of an HWC image, resized to ``size``."""
    import cv2

    top, left, side = box
    patch = image[top : top + side, left : left + side]
    if side == size:
        return patch
    smaller = side > size  # INTER_AREA averages when shrinking; cubic when enlarging
    interpolation = cv2.INTER_AREA if smaller else cv2.INTER_CUBIC
    out = cv2.resize(patch, (size, size), interpolation=interpolation)
    return out[:, :, None] if out.ndim == 2 else out


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HWC uint8 -> CHW float in [-1, 1]."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    return t.float().div_(127.5).sub_(1.0)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad the bottom and right of a float CHW or NCHW tensor to a multiple of ``multiple``.

    Returns the padded tensor and the original (height, width) for :func:`crop_to`.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    import torch

    batched = x.unsqueeze(0) if x.ndim == 3 else x
    # Reflection needs more pixels than it pads; a tiny side repeats its edge instead.
    mode = "reflect" if ph < h and pw < w else "replicate"
    out = torch.nn.functional.pad(batched, (0, pw, 0, ph), mode=mode)
    return (out[0] if x.ndim == 3 else out), (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`: keep the top-left ``size`` = (height, width)."""
    h, w = size
    return x[..., :h, :w]
