"""Reshaping paired datasets: A/ + B/ folders <-> aligned side-by-side images."""

from __future__ import annotations

import os
import warnings
from fractions import Fraction
from math import floor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from translate.data.datasets import resize_like
from translate.data.images import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    list_images,
    read_image,
    write_image,
)
from translate.data.layout import ALIGNED_RULE, FITS, DatasetError, match_pairs
from translate.data.transforms import zoom_crop


def combine_pairs(
    dir_a: str | os.PathLike[str], dir_b: str | os.PathLike[str], out: str | os.PathLike[str]
) -> int:
    """Write each matched pair of ``dir_a``/``dir_b`` as one aligned image (A left) in ``out``."""
    pairs = match_pairs(Path(dir_a), Path(dir_b))
    for path_a, path_b in tqdm(pairs, desc="combine"):
        a = read_image(path_a)
        if a.shape[0] != a.shape[1]:
            raise DatasetError(f"{path_a}: {a.shape[1]}x{a.shape[0]} is not square; {ALIGNED_RULE}")
        b = resize_like(read_image(path_b), a.shape)
        rel = path_a.relative_to(dir_a).with_suffix(".png")
        write_image(Path(out) / rel, np.concatenate([a, b], axis=1))
    return len(pairs)


def split_aligned(src: str | os.PathLike[str], out: str | os.PathLike[str]) -> int:
    """Split each aligned image of ``src`` into ``out/A/<rel>`` and ``out/B/<rel>``."""
    files = list_images(src)
    for path in tqdm(files, desc="split"):
        both = read_image(path)
        w = both.shape[1] // 2
        rel = path.relative_to(src).with_suffix(".png")
        write_image(Path(out) / "A" / rel, both[:, :w])
        write_image(Path(out) / "B" / rel, both[:, w : 2 * w])
    return len(files)


def _edges(image: np.ndarray) -> np.ndarray:
    import kornia
    import torch

    x = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).float() / 255.0
    _, edges = kornia.filters.canny(x)
    # Dark lines on white, like the reference edges2* datasets.
    line = (255 - edges[0, 0] * 255).round().to(torch.uint8).numpy()
    return np.repeat(line[:, :, None], 3, axis=2)


def _grayscale(image: np.ndarray) -> np.ndarray:
    gray = (image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).round()
    return np.repeat(gray.astype(np.uint8)[:, :, None], 3, axis=2)


DERIVED = {"edges": _edges, "grayscale": _grayscale}


def square(photo: np.ndarray, size: int, fit: str) -> np.ndarray:
    """``photo`` as a ``size`` x ``size`` image: its centre square (``crop``) or all of it,
    squeezed (``resize``). An aligned pair is two squares, whatever the photo's shape."""
    if fit not in FITS:
        raise ValueError(f"unknown fit {fit!r}; choose from {', '.join(FITS)}")
    if fit == "resize":
        return resize_like(photo, (size, size))
    height, width = photo.shape[:2]
    side = min(height, width)
    return zoom_crop(photo, ((height - side) // 2, (width - side) // 2, side), size)


def val_indices(count: int, fraction: float) -> set[int]:
    """Which of ``count`` sorted files go to ``val/``: ``floor(count * fraction)`` of them,
    spread evenly (0.1: the 10th, 20th, ...), so a folder of consecutive shots gives val
    images from all of it."""
    if not 0 <= fraction < 1:
        raise ValueError(f"val fraction must be in [0, 1), got {fraction}")
    exact = Fraction(str(fraction))  # 0.29 * 100 is 28.999... in floats
    return {i for i in range(count) if floor((i + 1) * exact) > floor(i * exact)}


def make_paired(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    kind: str,
    size: int = 256,
    fit: str = "crop",
    val: float = 0.1,
) -> dict[str, int]:
    """Aligned pairs (A = ``kind`` of the photo, B = the photo, each ``size`` px square, see
    :func:`square`) for every image under ``src``, in ``out/train/`` and ``out/val/`` (a
    ``val`` fraction of them). Unreadable files are skipped with a warning naming each.
    Returns the number of pairs written per split."""
    if kind not in DERIVED:
        raise ValueError(f"unknown kind {kind!r}; choose from {sorted(DERIVED)}")
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    files = list_images(src)
    if not files:
        raise DatasetError(f"{src}: no images found ({' '.join(IMAGE_EXTENSIONS)})")
    held = val_indices(len(files), val)
    counts = {"train": 0, "val": 0}
    for i, path in enumerate(tqdm(files, desc=kind)):
        try:
            photo = square(read_image(path), size, fit)
        except ImageReadError as exc:
            warnings.warn(f"skipping unreadable image: {exc}", stacklevel=2)
            continue
        split = "val" if i in held else "train"
        rel = path.relative_to(src).with_suffix(".png")
        write_image(Path(out) / split / rel, np.concatenate([DERIVED[kind](photo), photo], axis=1))
        counts[split] += 1
    return counts
