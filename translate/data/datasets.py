"""Datasets for paired (aligned or A/B folders), unpaired and single-folder images."""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from translate.data.images import ImageReadError, read_image
from translate.data.layout import (
    ALIGNED_RULE,
    PAIRED,
    UNPAIRED,
    DatasetError,
    T,
    find_layout,
    hold_out,
    image_size,
    name_some,
    not_aligned,
)
from translate.data.transforms import Preprocess, build_input_augment, build_transform, to_tensor


def _header_sizes(paths: list[Path], what: str) -> dict[Path, tuple[int, int]]:
    """Image sizes read from the headers (cheap: no pixel decoding). Files PIL cannot even
    open are skipped with one warning naming all of them."""
    sizes, bad = {}, []
    for p in paths:
        try:
            sizes[p] = image_size(p)
        except Exception:
            bad.append(str(p))
    if bad:
        message = f"{what}: skipping {len(bad)} unreadable file(s):" + name_some(bad)
        warnings.warn(message, stacklevel=3)
    return sizes


def _select(files: list[T], holdout: str | None) -> list[T]:
    return files if holdout is None else hold_out(files, held=holdout == "held")


def resize_like(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if image.shape[:2] == shape[:2]:
        return image
    out = cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return out[:, :, None] if out.ndim == 2 else out


def _with_channels(image: np.ndarray, channels: int) -> np.ndarray:
    image = np.ascontiguousarray(image)
    if channels == 1 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :, None]
    return image


class _SkipsBadFiles(Dataset):
    """A file that passes the up-front header check but fails to decode (e.g. a truncated
    JPEG) is reported once and replaced by the next item, so an epoch never crashes."""

    def _item(self, index: int) -> dict[str, torch.Tensor | str]:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        for attempt in range(len(self)):
            try:
                return self._item((index + attempt) % len(self))
            except ImageReadError as exc:
                warnings.warn(f"skipping unreadable image: {exc}", stacklevel=2)
        raise DatasetError(f"{self.root}: no readable images")


class PairedFolder(_SkipsBadFiles):
    """Paired images: aligned files (A left, B right) or ``A/`` and ``B/`` folders.

    ``holdout`` ``"rest"`` leaves out the files :func:`~translate.data.layout.hold_out` keeps
    for validation, ``"held"`` takes only those.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        direction: str = "AtoB",
        preprocess: Preprocess | None = None,
        input_channels: int = 3,
        output_channels: int = 3,
        max_dataset_size: int | None = None,
        train: bool = True,
        holdout: str | None = None,
    ) -> None:
        if direction not in ("AtoB", "BtoA"):
            raise ValueError(f"direction must be 'AtoB' or 'BtoA', got {direction!r}")
        self.root = Path(root)
        self.direction = direction
        self.preprocess = preprocess or Preprocess()
        self.input_channels, self.output_channels = input_channels, output_channels
        layout = find_layout(self.root, PAIRED)
        self.layout = layout.name
        pairs = _select(layout.pairs(split), holdout)
        sizes = _header_sizes(sorted({p for pair in pairs for p in pair}), str(self.root))
        pairs = [(a, b) for a, b in pairs if a in sizes and b in sizes]
        if self.layout == "aligned":
            wrong = not_aligned(sizes)
            if wrong:
                raise DatasetError(
                    f"{self.root}: {len(wrong)} image(s) are not A|B pairs; {ALIGNED_RULE}:"
                    + name_some(wrong)
                )
        if not pairs:
            raise DatasetError(f"{self.root}: no images found for split {split!r}")
        self.pairs = pairs[:max_dataset_size] if max_dataset_size else pairs
        self.transform = build_transform(self.preprocess, train)
        self.input_augment = build_input_augment(self.preprocess) if train else None

    def __len__(self) -> int:
        return len(self.pairs)

    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        path_a, path_b = self.pairs[index]
        ch_a, ch_b = self.input_channels, self.output_channels
        if self.direction == "BtoA":
            ch_a, ch_b = ch_b, ch_a
        if self.layout == "aligned":
            both = read_image(path_a, channels=max(ch_a, ch_b))
            w = both.shape[1] // 2
            if w == 0:
                raise ImageReadError(f"{path_a}: too narrow to hold two images side by side")
            a = _with_channels(both[:, :w], ch_a)
            b = _with_channels(both[:, w : 2 * w], ch_b)
        else:
            a = read_image(path_a, channels=ch_a)
            b = resize_like(read_image(path_b, channels=ch_b), a.shape)
        return (a, b) if self.direction == "AtoB" else (b, a)

    def _item(self, index: int) -> dict[str, torch.Tensor | str]:
        source, target = self._read(index)
        out = self.transform(
            image=np.ascontiguousarray(source), target=np.ascontiguousarray(target)
        )
        source, target = out["image"], out["target"]
        if self.input_augment is not None:
            source = self.input_augment(image=source)["image"]
        path_a, path_b = (str(p) for p in self.pairs[index])
        if self.direction == "BtoA":
            path_a, path_b = path_b, path_a
        return {
            "input": to_tensor(source),
            "target": to_tensor(target),
            "input_path": path_a,
            "target_path": path_b,
        }


class UnpairedFolder(_SkipsBadFiles):
    """Two unaligned domains in ``trainA/`` and ``trainB/`` (or ``testA/``, ``testB/``);
    ``holdout`` as for :class:`PairedFolder`, applied to each domain."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        preprocess: Preprocess | None = None,
        a_channels: int = 3,
        b_channels: int = 3,
        serial: bool = False,
        max_dataset_size: int | None = None,
        train: bool = True,
        holdout: str | None = None,
    ) -> None:
        self.root = Path(root)
        self.preprocess = preprocess or Preprocess()
        self.a_channels, self.b_channels, self.serial = a_channels, b_channels, serial
        layout = find_layout(self.root, UNPAIRED)
        domains = []
        for d, folder, files in zip("AB", layout.dirs(split), layout.domains(split), strict=True):
            files = list(_header_sizes(_select(files, holdout), str(folder)))
            if not files:
                raise DatasetError(f"{folder}: no images found for split {split!r} domain {d}")
            domains.append(files[:max_dataset_size] if max_dataset_size else files)
        self.paths_a, self.paths_b = domains
        # Each domain gets its own crop and flip: the images are unrelated.
        self.transform = build_transform(self.preprocess, train)
        self.input_augment = build_input_augment(self.preprocess) if train else None

    def __len__(self) -> int:
        return max(len(self.paths_a), len(self.paths_b))

    def _item(self, index: int) -> dict[str, torch.Tensor | str]:
        path_a = self.paths_a[index % len(self.paths_a)]
        if self.serial:
            path_b = self.paths_b[index % len(self.paths_b)]
        else:
            path_b = self.paths_b[random.randrange(len(self.paths_b))]
        a = self.transform(image=read_image(path_a, channels=self.a_channels))["image"]
        b = self.transform(image=read_image(path_b, channels=self.b_channels))["image"]
        if self.input_augment is not None:
            a = self.input_augment(image=a)["image"]
        return {"A": to_tensor(a), "B": to_tensor(b), "A_path": str(path_a), "B_path": str(path_b)}
