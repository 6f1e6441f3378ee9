"""Reshaping paired datasets: A/ + B/ folders <-> aligned side-by-side images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from translate.data.datasets import resize_like
from translate.data.images import list_images, read_image, write_image
from translate.data.layout import ALIGNED_RULE, DatasetError, match_pairs


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


def make_paired(src: str | os.PathLike[str], out: str | os.PathLike[str], kind: str) -> int:
    """Aligned pairs (A = ``kind`` of the photo, B = the photo) for every image under ``src``."""
    if kind not in DERIVED:
        raise ValueError(f"unknown kind {kind!r}; choose from {sorted(DERIVED)}")
    files = list_images(src)
    for path in tqdm(files, desc=kind):
        photo = read_image(path)
        rel = path.relative_to(src).with_suffix(".png")
        write_image(Path(out) / rel, np.concatenate([DERIVED[kind](photo), photo], axis=1))
    return len(files)
