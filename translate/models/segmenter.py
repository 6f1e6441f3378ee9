"""The segmenter that scores label-to-image models: a small fully-convolutional network
trained once on the real images of a label data set's ``train`` split against their label
maps, and cached beside the data.

The papers of semantic synthesis (pix2pixHD, SPADE, OASIS) score a model by running a
segmenter on its outputs and comparing the prediction with the label map it was given
(mIoU, pixel accuracy: :class:`translate.core.metrics.LabelScores`). They use a
pretrained DeepLab or DRN of their data set; nothing is downloaded here, so the segmenter
is trained on the data set itself, a few minutes on a CPU by default. Its own scores on the
real validation images are the ceiling the outputs' scores are read against.

The cache is ``ROOT/.translate/segmenter-<key>.safetensors``; the key hashes the classes,
the ignore id, the options and each training file's path, size and modification time, so
a changed file or option trains a new one, and the same data and options reuse it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from translate.core.atomic import atomic_write_bytes
from translate.data.datasets import LabelFolder
from translate.data.labels import Labels
from translate.data.transforms import Preprocess

CACHE_DIR = ".translate"  # hidden: the data sets' readers skip it
ARCHITECTURE = 1  # part of the cache key: raise it when Segmenter changes


@dataclass(frozen=True)
class SegmenterOptions:
    """How the segmenter is trained (all of it is in the cache key)."""

    steps: int = 400  # Adam steps of ``batch`` random crops
    size: int = 64  # side of the random crops, in pixels
    batch: int = 8
    width: int = 16  # channels of the first layers (twice as many at half resolution)
    lr: float = 2e-3
    seed: int = 0  # the crops and the initial weights

    def __post_init__(self) -> None:
        for name in ("steps", "size", "batch", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"segmenter {name}: expected a positive integer, got {value!r}")


class Segmenter(nn.Module):
    """Images (NCHW in [-1, 1], any size) -> class logits (N x classes x H x W): a full
    resolution branch for edges, and a half resolution one with dilated convolutions
    (about 60 px of context) for what a region is, joined before the classifier."""

    def __init__(self, classes: int, width: int = 16, in_channels: int = 3) -> None:
        super().__init__()

        def conv(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
            padding = dilation
            return [nn.Conv2d(c_in, c_out, 3, stride, padding, dilation), nn.ReLU(inplace=True)]

        wide = 2 * width
        self.near = nn.Sequential(*conv(in_channels, width), *conv(width, width))
        self.far = nn.Sequential(
            *conv(width, wide, stride=2), *conv(wide, wide, dilation=2),
            *conv(wide, wide, dilation=4), *conv(wide, wide, dilation=8),
        )  # fmt: skip
        self.head = nn.Sequential(*conv(width + wide, width), nn.Conv2d(width, classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        near = self.near(x)
        far = F.interpolate(self.far(near), size=x.shape[-2:], mode="bilinear")
        return self.head(torch.cat([near, far], 1))


def _dataset(root: Path, classes: int, labels: Labels, size: int) -> LabelFolder:
    crops = Preprocess(mode="crop", crop_size=size, flip=True)
    return LabelFolder(root, classes, labels, "train", crops, channels=3, train=True)


def cache_key(dataset: LabelFolder, classes: int, labels: Labels, options: SegmenterOptions) -> str:
    """The hash naming the cached segmenter of ``dataset``'s files (16 hex digits)."""
    files = []
    for pair in dataset.pairs:
        for path in pair:
            stat = path.stat()
            files.append(
                [path.relative_to(dataset.root).as_posix(), stat.st_size, stat.st_mtime_ns]
            )
    record = {
        "architecture": ARCHITECTURE,
        "classes": classes,
        "ignore": labels.ignore,
        "options": asdict(options),
        "files": files,
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(
    root: str | os.PathLike[str],
    classes: int,
    labels: Labels | None = None,
    options: SegmenterOptions | None = None,
) -> Path:
    """Where the segmenter of this data set, classes and options is cached."""
    labels, options = labels or Labels(), options or SegmenterOptions()
    return _cached(_dataset(Path(root), classes, labels, options.size), classes, labels, options)


def _cached(dataset: LabelFolder, classes: int, labels: Labels, options: SegmenterOptions) -> Path:
    key = cache_key(dataset, classes, labels, options)
    return dataset.root / CACHE_DIR / f"segmenter-{key}.safetensors"


def train(
    dataset: LabelFolder, classes: int, labels: Labels, options: SegmenterOptions,
    progress: bool = True,
) -> Segmenter:  # fmt: skip
    """A :class:`Segmenter` trained on ``dataset``'s images against their ids: cross
    entropy, the ignore id left out, ``options.steps`` Adam steps (on the CPU: the caller's
    global RNGs, torch's and the augmentations' Python and NumPy ones, are left as they were,
    so a training run that trains it at its first validation resumes exactly)."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(options.seed)
            random.seed(options.seed)  # the crops and flips
            np.random.seed(options.seed)
            net = Segmenter(classes, options.width)
            loader = DataLoader(
                dataset,
                batch_size=options.batch,
                shuffle=True,
                drop_last=len(dataset) >= options.batch,
                generator=torch.Generator().manual_seed(options.seed),
            )
            optimizer = torch.optim.Adam(net.parameters(), lr=options.lr)
            ignore = -100 if labels.ignore is None else labels.ignore  # -100: cross_entropy's none
            batches = iter(())
            for _ in tqdm(
                range(options.steps), desc="segmenter", unit="step", disable=not progress
            ):
                batch = next(batches, None)
                if batch is None:  # another pass over the shuffled data
                    batches = iter(loader)
                    batch = next(batches)
                loss = F.cross_entropy(net(batch["target"]), batch["labels"], ignore_index=ignore)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    return net.eval().requires_grad_(False)


def load_or_train(
    root: str | os.PathLike[str],
    classes: int,
    labels: Labels | None = None,
    options: SegmenterOptions | None = None,
    progress: bool = True,
) -> Segmenter:
    """The segmenter of the label data set at ``root`` (``classes`` classes, the ignore id of
    ``labels``), frozen in eval mode on the CPU: read from the cache when it holds one for
    these files and options, else trained (a progress bar) and cached, written atomically.
    A cache that cannot be written (a read-only data folder) is a warning: the next call
    trains again."""
    root, labels, options = Path(root), labels or Labels(), options or SegmenterOptions()
    dataset = _dataset(root, classes, labels, options.size)
    path = _cached(dataset, classes, labels, options)
    if path.is_file():
        net = Segmenter(classes, options.width)
        net.load_state_dict(load_file(path))
        return net.eval().requires_grad_(False)
    net = train(dataset, classes, labels, options, progress)
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    try:
        path.parent.mkdir(exist_ok=True)
        atomic_write_bytes(path, safetensors_bytes(state))
    except OSError as exc:
        warnings.warn(
            f"{path}: the segmenter is not cached ({exc.strerror or exc}); it is trained again "
            "next time",
            stacklevel=2,
        )
    return net
