"""Datasets for paired (aligned or A/B folders) and unpaired images, single high-resolution
images (super-resolution), and crops of a single A and B image."""

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
    HR,
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
from translate.data.transforms import (
    Preprocess,
    ScaledPairTransform,
    build_input_augment,
    build_transform,
    pad_to_multiple,
    to_tensor,
    zoom_box,
    zoom_crop,
)


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
    """One half of an aligned pair, read with the most channels either half needs, with
    ``channels``: gray from RGB, alpha (the last of 2 or 4) kept only where asked for."""
    image = np.ascontiguousarray(image)
    if image.shape[2] == channels:
        return image
    color, alpha = (
        (image[:, :, :-1], image[:, :, -1:]) if image.shape[2] in (2, 4) else (image, None)
    )
    if channels in (1, 2) and color.shape[2] == 3:
        color = cv2.cvtColor(np.ascontiguousarray(color), cv2.COLOR_RGB2GRAY)[:, :, None]
    if channels in (2, 4) and alpha is not None:
        color = np.concatenate([color, alpha], axis=2)
    return np.ascontiguousarray(color)


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
    for validation, ``"held"`` takes only those. ``scale``: the generator's output scale; B is
    then ``scale`` times A (resized to it if not), cropped at the corresponding position.
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
        scale: int = 1,
    ) -> None:
        if direction not in ("AtoB", "BtoA"):
            raise ValueError(f"direction must be 'AtoB' or 'BtoA', got {direction!r}")
        self.scale = scale
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
        if scale != 1 and self.layout == "aligned":
            raise DatasetError(
                f"{self.root}: aligned A|B files hold same-size halves; a scale-{scale} "
                "generator needs its pairs in A/ and B/ folders, B at scale times A"
            )
        self.pairs = pairs[:max_dataset_size] if max_dataset_size else pairs
        self.transform = (
            build_transform(self.preprocess, train)
            if scale == 1
            else ScaledPairTransform(self.preprocess, scale, train)
        )
        self.input_augment = build_input_augment(self.preprocess) if train else None

    def __len__(self) -> int:
        return len(self.pairs)

    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        path_a, path_b = self.pairs[index]
        ch_a, ch_b = self.input_channels, self.output_channels
        if self.direction == "BtoA":
            ch_a, ch_b = ch_b, ch_a
        if self.layout == "aligned":
            alpha = bool({ch_a, ch_b} & {2, 4})  # one half keeps alpha: read it for both
            both = read_image(path_a, channels=4 if alpha else max(ch_a, ch_b))
            w = both.shape[1] // 2
            if w == 0:
                raise ImageReadError(f"{path_a}: too narrow to hold two images side by side")
            a = _with_channels(both[:, :w], ch_a)
            b = _with_channels(both[:, w : 2 * w], ch_b)
        else:
            a = read_image(path_a, channels=ch_a)
            # B at scale times A; with BtoA, the scale-times side is A's file.
            s = self.scale
            if self.direction == "AtoB" or s == 1:
                b = resize_like(read_image(path_b, channels=ch_b), (a.shape[0] * s, a.shape[1] * s))
            else:
                b = read_image(path_b, channels=ch_b)
                a = resize_like(a, (b.shape[0] * s, b.shape[1] * s))
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


class HRFolder(_SkipsBadFiles):
    """High-resolution images alone (``train/``, ``val/`` or the root; :data:`HR` layout),
    whose low-resolution inputs a super-resolution trainer synthesises: items
    ``{"target": Tensor[C,H,W] in [-1, 1], "target_path": str, "seed": int}``.

    ``preprocess.mode`` ``crop``: a ``crop_size`` square at a random position (the centre
    with ``train=False``), reflect-padded where the image is smaller, flipped at random;
    ``none``: the whole image, cropped at the bottom and right to a multiple of ``multiple``
    (the scale times the generator's size multiple, so its LR side is whole). ``seed`` seeds
    the item's degradation: drawn from Python's ``random``, which
    :class:`~translate.training.sampling.SeededItems` seeds per (run seed, epoch, index), so a
    resumed run degrades every item as the first run did; validation items use their index,
    the same LR inputs at every evaluation. ``holdout`` as for :class:`PairedFolder`.
    """

    MODES = ("crop", "none")

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        preprocess: Preprocess | None = None,
        channels: int = 3,
        multiple: int = 1,
        max_dataset_size: int | None = None,
        train: bool = True,
        holdout: str | None = None,
    ) -> None:
        self.root = Path(root)
        self.preprocess = pre = preprocess or Preprocess(mode="crop")
        if pre.mode not in self.MODES:
            raise ValueError(
                f"config key 'data.preprocess.mode': {pre.mode!r} would resize the HR images "
                f"the LR inputs are made from; use one of {', '.join(self.MODES)}"
            )
        if pre.mode == "crop" and pre.crop_size % multiple:
            raise ValueError(
                f"config key 'data.preprocess.crop_size': {pre.crop_size} HR pixels is not a "
                f"multiple of {multiple} (the scale times the generator's size multiple); use "
                f"{max(multiple, pre.crop_size // multiple * multiple)}"
            )
        self.channels, self.multiple, self.train = channels, multiple, train
        layout = find_layout(self.root, HR)
        files = list(_header_sizes(_select(layout.images(split), holdout), str(self.root)))
        if not files:
            raise DatasetError(f"{self.root}: no images found for split {split!r}")
        self.paths = files[:max_dataset_size] if max_dataset_size else files

    def __len__(self) -> int:
        return len(self.paths)

    def _item(self, index: int) -> dict[str, torch.Tensor | str | int]:
        path, pre = self.paths[index], self.preprocess
        image = read_image(path, channels=self.channels)
        if pre.mode == "crop":
            image = _crop_square(image, pre.crop_size, self.train)
            if self.train and pre.flip and random.random() < 0.5:
                image = image[:, ::-1]
        else:
            m = self.multiple
            height, width = image.shape[0] // m * m, image.shape[1] // m * m
            if not (height and width):
                raise ImageReadError(f"{path}: smaller than {m} pixels, the HR side multiple")
            image = image[:height, :width]
        seed = random.getrandbits(63) if self.train else index
        return {"target": to_tensor(image), "target_path": str(path), "seed": seed}


def _crop_square(image: np.ndarray, size: int, at_random: bool) -> np.ndarray:
    """A ``size`` square of an HWC image, at a random position from Python's ``random`` or
    the centre; a smaller image is reflect-padded at the bottom and right first."""
    bottom, right = max(size - image.shape[0], 0), max(size - image.shape[1], 0)
    if bottom or right:
        image = cv2.copyMakeBorder(image, 0, bottom, 0, right, cv2.BORDER_REFLECT_101)
        image = image[:, :, None] if image.ndim == 2 else image
    room = image.shape[0] - size, image.shape[1] - size
    top, left = (
        (random.randint(0, room[0]), random.randint(0, room[1]))
        if at_random
        else (room[0] // 2, room[1] // 2)
    )
    return image[top : top + size, left : left + size]


class SingleImagePair(Dataset):
    """Crops of one A image and one B image (the CUT authors' SinCUT): ``length`` items of
    ``{"A", "B", "A_path", "B_path"}``, each domain cut at its own random square and zoom
    (:func:`~translate.data.transforms.zoom_box`, zoom drawn from ``scale``), then
    flipped and (A) augmented as ``preprocess`` says.

    Positions, zooms and flips come from Python's ``random``, which
    :class:`~translate.training.sampling.SeededItems` seeds per item, so a run and its
    resume cut the same crops. ``train=False`` is one item: the whole A image padded at the
    bottom and right to ``preprocess.size_multiple``, and B resized to that size (the
    sample grid shows columns of one size); there is nothing held out to validate on.
    Errors name the config keys ``data.single_image.a`` / ``.b``.
    """

    def __init__(
        self,
        a: str | os.PathLike[str],
        b: str | os.PathLike[str],
        preprocess: Preprocess | None = None,
        a_channels: int = 3,
        b_channels: int = 3,
        scale: tuple[float, float] = (1.0, 1.0),
        length: int = 1,
        train: bool = True,
    ) -> None:
        self.preprocess = preprocess or Preprocess(mode="crop")
        self.paths = {"A": Path(a), "B": Path(b)}
        size = self.preprocess.crop_size
        self.images = {
            "A": _single_image("a", self.paths["A"], a_channels, size),
            "B": _single_image("b", self.paths["B"], b_channels, size),
        }
        self.train, self.length = train, length if train else 1
        self.scales = {
            d: _zoom_range(d, self.paths[d], im, size, scale) if train else (1.0, 1.0)
            for d, im in self.images.items()
        }
        self.input_augment = build_input_augment(self.preprocess) if train else None

    def __len__(self) -> int:
        return self.length

    def _crop(self, domain: str) -> np.ndarray:
        image, size = self.images[domain], self.preprocess.crop_size
        rng = random.Random(random.getrandbits(64))
        box = zoom_box(*image.shape[:2], size, self.scales[domain], rng)
        crop = zoom_crop(image, box, size)
        if self.preprocess.flip and rng.random() < 0.5:
            crop = crop[:, ::-1]
        return crop

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        if self.train:
            a, b = self._crop("A"), self._crop("B")
            if self.input_augment is not None:
                a = self.input_augment(image=np.ascontiguousarray(a))["image"]
            tensors = {"A": to_tensor(a), "B": to_tensor(b)}
        else:
            whole, _ = pad_to_multiple(to_tensor(self.images["A"]), self.preprocess.size_multiple)
            b = resize_like(self.images["B"], tuple(whole.shape[1:]))
            tensors = {"A": whole, "B": to_tensor(b)}
        return {**tensors, "A_path": str(self.paths["A"]), "B_path": str(self.paths["B"])}


def _single_image(key: str, path: Path, channels: int, size: int) -> np.ndarray:
    where = f"config key 'data.single_image.{key}'"
    if not path.is_file():
        raise DatasetError(f"{where}: {path} does not exist")
    try:
        image = read_image(path, channels=channels)
    except ImageReadError as exc:
        raise DatasetError(f"{where}: {exc}") from None
    height, width = image.shape[:2]
    if min(height, width) < size:
        raise DatasetError(
            f"{where}: {path} is {width}x{height}, smaller than data.preprocess.crop_size {size}"
        )
    return image


def _zoom_range(
    domain: str, path: Path, image: np.ndarray, size: int, scale: tuple[float, float]
) -> tuple[float, float]:
    """``scale`` narrowed to the zooms the image allows: a crop cannot cover more than the
    image's shorter side. Narrowing is said in a warning, as the crops differ from the
    config's."""
    least = size / min(image.shape[:2])
    low, high = max(scale[0], least), max(scale[1], least)
    if (low, high) != tuple(scale):
        height, width = image.shape[:2]
        warnings.warn(
            f"data.single_image.scale: {path} ({width}x{height}) allows zooms down to "
            f"{least:.3g} at crop_size {size}; {domain} crops use [{low:.3g}, {high:.3g}]",
            stacklevel=3,
        )
    return low, high
