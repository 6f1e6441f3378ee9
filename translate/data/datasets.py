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

from translate.core.choices import DIRECTIONS
from translate.data.augment import build_input_augment, build_transform
from translate.data.images import ImageReadError, LabelMapError, read_image, read_label_map
from translate.data.labels import (
    INSTANCE_IDS,
    Labels,
    instance_edges,
    instance_maps,
    instance_size_problem,
    one_hot,
)
from translate.data.layout import (
    ALIGNED_RULE,
    HR,
    LABELS,
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
    apply_symmetry,
    check_hr_crop,
    crop_origin,
    draw_symmetry,
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


def _refuse_smaller_than_crop(sizes: dict[Path, tuple[int, int]], crop: int, multiple: int) -> None:
    """Refuse images (``sizes``: width, height in HR pixels) smaller than an SR crop: padding
    them would train on mirrored pixels. Names the first, how many more, and the largest
    crop (a multiple of ``multiple``) that every image holds."""
    small = [p for p, (w, h) in sizes.items() if min(w, h) < crop]
    if not small:
        return
    width, height = sizes[small[0]]
    more = f" (and {len(small) - 1} more)" if len(small) > 1 else ""
    most = min(min(size) for size in sizes.values()) // multiple * multiple
    fix = f"lower it to at most {most} or remove the smaller images" if most else "remove them"
    raise DatasetError(
        f"config key 'data.preprocess.crop_size': {crop} HR pixels is larger than {small[0]} "
        f"({width}x{height}){more}; {fix} (crops are never padded)"
    )


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
    then ``scale`` times A (resized to it if not), cropped at the corresponding position
    (:class:`~translate.data.transforms.ScaledPairTransform`: ``crop_size`` in B's pixels, a
    multiple of ``multiple``, default the scale; images smaller than the crop are refused).
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
        multiple: int | None = None,
    ) -> None:
        if direction not in DIRECTIONS:
            expected = " or ".join(map(repr, DIRECTIONS))
            raise ValueError(f"direction must be {expected}, got {direction!r}")
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
        self.pairs = pairs[: max_dataset_size or None]
        self.transform = (
            build_transform(self.preprocess, train)
            if scale == 1
            else ScaledPairTransform(self.preprocess, scale, train, multiple)
        )
        if scale != 1 and self.preprocess.mode == "crop":
            # The LR file's size sets the pair's (B is resized to scale times A, or A to B's).
            lr = 0 if direction == "AtoB" else 1
            hr_sizes = {
                pair[1 - lr]: (sizes[pair[lr]][0] * scale, sizes[pair[lr]][1] * scale)
                for pair in self.pairs
            }
            _refuse_smaller_than_crop(hr_sizes, self.preprocess.crop_size, multiple or scale)
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


class LabelFolder(_SkipsBadFiles):
    """Label maps and their images: class-id PNGs in ``A/`` (8 or 16-bit gray, or palette
    indices: :func:`~translate.data.images.read_label_map`) and the images in ``B/``, matched
    by name (``train/A``, ``train/B`` or ``A/train``, ``B/train``, as paired folders).

    Items: ``input``, the one-hot map ``(classes, H, W)`` of 0 and 1 (ignored pixels all
    zeros); ``labels``, the ids ``(H, W)`` int64 (ignored pixels keep ``labels.ignore``);
    ``target``, the image in [-1, 1]; and both paths. The map and the image are cut and
    flipped together, the ids by nearest neighbour (never interpolated); an image of another
    size than its map is resized to the map's. An id of ``classes`` or more is a
    :class:`DatasetError` naming the file and ``data.label_nc`` (never skipped).

    ``instances``: each map also has an instance map of the same name in ``inst/`` beside
    ``A/`` (``train/inst`` or ``inst/train``; one id per object, 8 or 16-bit), cut with it;
    ``input`` then ends with one more channel, 1 on the boundaries between instances (as
    pix2pixHD feeds them, so that touching objects of one class stay apart).
    ``holdout`` as for :class:`PairedFolder`.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        classes: int,
        labels: Labels | None = None,
        split: str = "train",
        preprocess: Preprocess | None = None,
        channels: int = 3,
        max_dataset_size: int | None = None,
        train: bool = True,
        holdout: str | None = None,
        instances: bool = False,
    ) -> None:
        self.root = Path(root)
        self.labels = labels or Labels()
        self.labels.check_count(classes)
        self.classes, self.channels = classes, channels
        self.preprocess = pre = preprocess or Preprocess()
        if pre.input_augment:
            raise ValueError(
                "config key 'data.preprocess.input_augment': the input is a label map, whose "
                "ids an image augmentation would change; remove it"
            )
        layout = find_layout(self.root, LABELS)
        pairs = _select(layout.pairs(split), holdout)
        sizes = _header_sizes(sorted({p for pair in pairs for p in pair}), str(self.root))
        pairs = [(a, b) for a, b in pairs if a in sizes and b in sizes]
        if not pairs:
            raise DatasetError(f"{self.root}: no label maps found for split {split!r}")
        self.pairs = pairs[: max_dataset_size or None]
        self.instances = _instance_maps(layout.dirs(split)[0], self.pairs) if instances else None
        self.transform = build_transform(pre, train)

    def __len__(self) -> int:
        return len(self.pairs)

    def _item(self, index: int) -> dict[str, torch.Tensor | str]:
        path_a, path_b = self.pairs[index]
        try:
            ids = read_label_map(path_a, self.classes, self.labels.ignore, "data.label_nc")
            if self.instances is not None:  # cut as a second channel of the same mask
                inst = read_label_map(self.instances[index], INSTANCE_IDS, key="16-bit ids")
                sizes = (inst.shape[1], inst.shape[0]), (ids.shape[1], ids.shape[0])
                wrong = instance_size_problem(self.instances[index], sizes[0], path_a, sizes[1])
                if wrong is not None:
                    raise LabelMapError(wrong)
                ids = np.stack([ids, inst], axis=-1).astype(np.uint16)
        except LabelMapError as exc:  # wrong data, not an unreadable file: stop the run
            raise DatasetError(str(exc)) from None
        image = resize_like(read_image(path_b, channels=self.channels), ids.shape)
        out = self.transform(image=np.ascontiguousarray(image), mask=np.ascontiguousarray(ids))
        mask = torch.from_numpy(out["mask"].astype(np.int64))
        labels = mask[..., 0] if self.instances is not None else mask
        hot = one_hot(labels, self.classes, self.labels.ignore)
        if self.instances is not None:
            hot = torch.cat([hot, instance_edges(mask[..., 1])[None]])
        return {
            "input": hot,
            "labels": labels,
            "target": to_tensor(out["image"]),
            "input_path": str(path_a),
            "target_path": str(path_b),
        }


def _instance_maps(dir_a: Path, pairs: list[tuple[Path, Path]]) -> list[Path]:
    """The instance map of each pair's label map; the first missing one stops the run."""
    found, missing = instance_maps(dir_a, [a for a, _ in pairs])
    if missing:
        raise DatasetError(missing[0])
    return [p for p in found if p is not None]


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
            domains.append(files[: max_dataset_size or None])
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
    with ``train=False``), flipped and turned at random as ``flip`` and ``rotate`` say;
    images smaller than the crop are refused (by their headers, up front);
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
        check_hr_crop(pre, multiple)
        self.channels, self.multiple, self.train = channels, multiple, train
        layout = find_layout(self.root, HR)
        sizes = _header_sizes(_select(layout.images(split), holdout), str(self.root))
        if not sizes:
            raise DatasetError(f"{self.root}: no images found for split {split!r}")
        self.paths = list(sizes)[: max_dataset_size or None]
        if pre.mode == "crop":
            _refuse_smaller_than_crop({p: sizes[p] for p in self.paths}, pre.crop_size, multiple)

    def __len__(self) -> int:
        return len(self.paths)

    def _item(self, index: int) -> dict[str, torch.Tensor | str | int]:
        path, pre = self.paths[index], self.preprocess
        image = read_image(path, channels=self.channels)
        if pre.mode == "crop":
            rng = random.Random(random.getrandbits(64)) if self.train else None
            c = pre.crop_size
            top, left = crop_origin(*image.shape[:2], c, rng)
            image = image[top : top + c, left : left + c]
            if rng is not None:
                image = apply_symmetry(image, *draw_symmetry(pre, rng))
        else:
            m = self.multiple
            height, width = image.shape[0] // m * m, image.shape[1] // m * m
            if not (height and width):
                raise ImageReadError(f"{path}: smaller than {m} pixels, the HR side multiple")
            image = image[:height, :width]
        seed = random.getrandbits(63) if self.train else index
        return {"target": to_tensor(image), "target_path": str(path), "seed": seed}


class SingleImagePair(Dataset):
    """Crops of one A image and one B image (the CUT authors' SinCUT): ``length`` items of
    ``{"A", "B", "A_path", "B_path"}``, each domain cut at its own random square and zoom
    (:func:`~translate.data.transforms.zoom_box`, zoom drawn from ``scale``), then
    flipped, turned and (A) augmented as ``preprocess`` says.

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
        return apply_symmetry(zoom_crop(image, box, size), *draw_symmetry(self.preprocess, rng))

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
