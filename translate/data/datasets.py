"""Datasets for paired (aligned or A/B folders), unpaired and single-folder images."""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from translate.data.images import ImageReadError, list_images, read_image
from translate.data.transforms import Preprocess, build_input_augment, build_transform, to_tensor

MAX_NAMED = 30


class DatasetError(ValueError):
    """A dataset folder that cannot be used as it is; the message says why."""


def _name_some(paths: list[str]) -> str:
    shown = "\n  ".join(paths[:MAX_NAMED])
    more = f"\n  ... and {len(paths) - MAX_NAMED} more" if len(paths) > MAX_NAMED else ""
    return f"\n  {shown}{more}"


def _split_dir(root: Path, split: str) -> Path:
    """``root/split`` when it exists, else ``root`` itself (a dataset without splits)."""
    return root / split if (root / split).is_dir() else root


def _unreadable(paths: list[Path]) -> list[Path]:
    """Files whose header PIL cannot parse (cheap: no pixel decoding)."""
    bad = []
    for p in paths:
        try:
            with Image.open(p) as img:
                img.verify()
        except Exception:
            bad.append(p)
    return bad


def _drop_unreadable(paths: list[Path], what: str) -> list[Path]:
    """Skip files PIL cannot even open, with one warning naming all of them."""
    bad = set(_unreadable(paths))
    if bad:
        warnings.warn(
            f"{what}: skipping {len(bad)} unreadable file(s):" + _name_some(sorted(map(str, bad))),
            stacklevel=3,
        )
    return [p for p in paths if p not in bad]


def match_pairs(dir_a: Path, dir_b: Path) -> list[tuple[Path, Path]]:
    """Pair files of ``dir_a`` and ``dir_b`` by relative path and stem; extensions may differ.

    Raises :class:`DatasetError` naming every file that lacks a partner.
    """

    def keyed(d: Path) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for p in list_images(d):
            key = p.relative_to(d).with_suffix("").as_posix()
            if key in out:
                raise DatasetError(f"{p}: same name as {out[key]} with another extension")
            out[key] = p
        return out

    a, b = keyed(dir_a), keyed(dir_b)
    missing = [f"{a[k]} (no partner in {dir_b})" for k in sorted(a.keys() - b.keys())]
    missing += [f"{b[k]} (no partner in {dir_a})" for k in sorted(b.keys() - a.keys())]
    if missing:
        raise DatasetError(f"{len(missing)} file(s) without a partner:" + _name_some(missing))
    return [(a[k], b[k]) for k in sorted(a)]


def detect_paired_layout(root: Path, split: str) -> tuple[str, Path, Path, Path]:
    """``("folders", dir)`` when ``dir/A`` and ``dir/B`` exist, else ``("aligned", dir)``."""
    for base in (root / split / "", root / ""):
        if (base / "A").is_dir() and (base / "B").is_dir():
            sub_a, sub_b = base / "A" / split, base / "B" / split
            if sub_a.is_dir() and sub_b.is_dir():
                return "folders", base, sub_a, sub_b
            return "folders", base, base / "A", base / "B"
    d = _split_dir(root, split)
    return "aligned", d, d, d


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
    """Paired images: aligned files (A left, B right) or ``A/`` and ``B/`` folders."""

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
    ) -> None:
        if direction not in ("AtoB", "BtoA"):
            raise ValueError(f"direction must be 'AtoB' or 'BtoA', got {direction!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: dataset folder does not exist")
        self.direction = direction
        self.preprocess = preprocess or Preprocess()
        self.input_channels, self.output_channels = input_channels, output_channels
        self.layout, _, dir_a, dir_b = detect_paired_layout(self.root, split)
        if self.layout == "folders":
            pairs = match_pairs(dir_a, dir_b)
            good = set(_drop_unreadable([p for pair in pairs for p in pair], str(self.root)))
            pairs = [(a, b) for a, b in pairs if a in good and b in good]
        else:
            files = _drop_unreadable(list_images(dir_a), str(self.root))
            pairs = [(f, f) for f in files]
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
    """Two unaligned domains in ``trainA/`` and ``trainB/`` (or ``testA/``, ``testB/``)."""

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
    ) -> None:
        self.root = Path(root)
        self.preprocess = preprocess or Preprocess()
        self.a_channels, self.b_channels, self.serial = a_channels, b_channels, serial
        domains = []
        for d in ("A", "B"):
            folder = self.root / f"{split}{d}"
            if not folder.is_dir():
                raise DatasetError(
                    f"{folder}: folder missing (unpaired data needs {split}A/ and {split}B/)"
                )
            files = _drop_unreadable(list_images(folder), str(folder))
            if not files:
                raise DatasetError(f"{folder}: no images found")
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


class ImageFolder(Dataset):
    """Every image under ``root`` (recursive), for conversion; paths are kept relative."""

    def __init__(self, root: str | os.PathLike[str], channels: int = 3) -> None:
        self.root = Path(root)
        self.channels = channels
        self.paths = list_images(self.root)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        path = self.paths[index]
        return {
            "image": to_tensor(read_image(path, channels=self.channels)),
            "path": path.relative_to(self.root).as_posix(),
        }
