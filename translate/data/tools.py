"""Reshaping paired datasets: A/ + B/ folders <-> aligned side-by-side images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from translate.data.datasets import match_pairs, resize_like
from translate.data.images import list_images, read_image, write_image


def combine_pairs(
    dir_a: str | os.PathLike[str], dir_b: str | os.PathLike[str], out: str | os.PathLike[str]
) -> int:
    """Write each matched pair of ``dir_a``/``dir_b`` as one aligned image (A left) in ``out``."""
    pairs = match_pairs(Path(dir_a), Path(dir_b))
    for path_a, path_b in tqdm(pairs, desc="combine"):
        a = read_image(path_a)
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
