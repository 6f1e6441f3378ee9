"""The training and validation sets of a run, built by the trainer's data kind.

A trainer declares ``data`` (``Trainer.data``); ``DATASETS`` maps that kind to the folder
dataset that reads it, so neither the engine nor a trainer branches on the kind. A new kind
(e.g. scaled LR/HR pairs) registers its builder here and a trainer declares it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import Dataset

from translate.data.datasets import (
    HRFolder,
    LabelFolder,
    PairedFolder,
    SingleImagePair,
    UnpairedFolder,
)
from translate.data.layout import HOLDOUT, HR, LABELS, PAIRED, UNPAIRED, find_layout
from translate.data.public import missing_data_hint
from translate.models.model_file import declared_geometry
from translate.networks import build_generator
from translate.networks.registry import Registry
from translate.training.config import Config, label_count
from translate.training.specs import TRAINERS

# A builder takes (the run's config, split, train, max_dataset_size, holdout part) and
# returns the dataset of that split: ``train=False`` is the validation set (uncropped,
# unflipped).
DatasetBuilder = Callable[[Config, str, bool, "int | None", "str | None"], Dataset]
DATASETS = Registry("data kind")


@DATASETS.register(PAIRED)
def paired_folder(
    config: Config, split: str, train: bool, size: int | None, part: str | None
) -> Dataset:
    # The generator's declared scale: each B crop is that times its A crop.
    d, (scale, multiple) = config.data, _hr_geometry(config)
    return PairedFolder(
        d.root, split, d.direction, d.preprocess, d.input_channels, d.output_channels,
        max_dataset_size=size, train=train, holdout=part, scale=scale, multiple=multiple,
    )  # fmt: skip


@DATASETS.register(UNPAIRED)
def unpaired_folder(
    config: Config, split: str, train: bool, size: int | None, part: str | None
) -> Dataset:
    d = config.data
    return UnpairedFolder(
        d.root, split, d.preprocess, d.input_channels, d.output_channels,
        serial=d.serial or not train, max_dataset_size=size, train=train, holdout=part,
    )  # fmt: skip


@DATASETS.register(HR)
def hr_folder(
    config: Config, split: str, train: bool, size: int | None, part: str | None
) -> Dataset:
    d, (_, multiple) = config.data, _hr_geometry(config)
    return HRFolder(
        d.root, split, d.preprocess, d.output_channels, multiple,
        max_dataset_size=size, train=train, holdout=part,
    )  # fmt: skip


@DATASETS.register(LABELS)
def label_folder(
    config: Config, split: str, train: bool, size: int | None, part: str | None
) -> Dataset:
    d = config.data
    return LabelFolder(
        d.root, label_count(config), d.labels, split, d.preprocess, d.output_channels,
        max_dataset_size=size, train=train, holdout=part, instances=d.instances,
    )  # fmt: skip


def _hr_geometry(config: Config) -> tuple[int, int]:
    """The config generator's scale, and what HR sizes must divide by: the scale times the
    generator's size multiple, so that LR crops are whole pixels of a size it takes. Read
    from the generator built on the meta device (no memory)."""
    d, g = config.data, config.generator
    with torch.device("meta"):
        net = build_generator(g.name, d.input_channels, d.output_channels, **g.options)
    scale = declared_geometry(net)["scale"]
    return scale, scale * getattr(net, "size_multiple", 1)


def build_datasets(config: Config) -> tuple[Dataset, Dataset, str]:
    """Training set, validation set (the first ``data.val_size`` images of the validation
    split, uncropped and unflipped) and the name of that split, resolved from
    ``data.val_split`` (``holdout``: files of the training split kept out of training).
    ``data.single_image``: crops of the two images, validated on the whole A image
    (``train``: nothing is held out)."""
    d = config.data
    if d.single_image is not None:  # configure.validate checked the trainer takes unpaired data
        s = d.single_image
        common = (d.preprocess, d.input_channels, d.output_channels, tuple(s.scale))
        crops = SingleImagePair(s.a, s.b, *common, s.steps_per_epoch * config.train.batch_size)
        return crops, SingleImagePair(s.a, s.b, *common, train=False), "train"
    kind = TRAINERS.spec(config.model).data_kind(config)
    if not Path(d.root).is_dir():
        raise ValueError(
            f"config key 'data.root': dataset folder {d.root} does not exist; "
            + missing_data_hint(d.root, kind)
        )
    layout = find_layout(d.root, kind)
    dataset: DatasetBuilder = DATASETS.get(kind)
    train_split, val_split = layout.train_split(), layout.val_split(d.val_split)
    holdout = val_split == HOLDOUT
    train_set = dataset(config, train_split, True, d.max_dataset_size, "rest" if holdout else None)
    val_set = dataset(
        config,
        train_split if holdout else val_split,
        False,
        d.val_size,
        "held" if holdout else None,
    )
    return train_set, val_set, val_split
