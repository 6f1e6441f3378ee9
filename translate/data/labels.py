"""Label maps as training data: the classes a data set declares (``data.label_nc`` and
``data.labels``: an ignore id, names, colours), one-hot encoding and class counts.

Ids are never interpolated: the datasets resize and crop them by nearest neighbour
(:func:`translate.data.augment.build_transform`'s ``mask``), and only the one-hot encoding
turns them into channels. torch is imported by the function that uses it, so a config that
holds a :class:`Labels` section is read without it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from translate.data.images import ImageReadError, LabelMapError, read_label_map

if TYPE_CHECKING:
    import torch

MAX_ID = 2**16 - 1  # the largest id a 16-bit PNG holds


@dataclass
class Labels:
    """What a label data set declares besides its number of classes (``data.labels``)."""

    # the id of unlabelled pixels (e.g. 255): all zeros when one-hot encoded, not counted;
    # it may lie outside 0 to label_nc - 1
    ignore: int | None = None
    names: list[str] = field(default_factory=list)  # one per class, in id order (optional)
    colors: list[list[int]] = field(default_factory=list)  # [r, g, b] per class (optional)

    def __post_init__(self) -> None:
        if self.ignore is not None and (
            isinstance(self.ignore, bool) or not isinstance(self.ignore, int)
            or not 0 <= self.ignore <= MAX_ID
        ):  # fmt: skip
            raise ValueError(f"ignore: expected an id from 0 to {MAX_ID}, got {self.ignore!r}")
        for i, color in enumerate(self.colors):
            if (
                not isinstance(color, (list, tuple))
                or len(color) != 3
                or not all(isinstance(v, int) and 0 <= v <= 255 for v in color)
            ):
                raise ValueError(f"colors[{i}]: expected [r, g, b] of 0 to 255, got {color!r}")

    def check_count(self, classes: int, key: str = "data.label_nc") -> None:
        """``ValueError`` naming the key when names or colours are given but not one per class."""
        if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
            raise ValueError(
                f"config key {key!r}: expected a number of classes >= 1, got {classes!r}"
            )
        for what in ("names", "colors"):
            given = len(getattr(self, what))
            if given and given != classes:
                raise ValueError(
                    f"config key 'data.labels.{what}': {given} given for {key} {classes}; "
                    "give one per class or none"
                )

    def name(self, class_id: int) -> str:
        """The class's name, or its id when the data set names none."""
        return self.names[class_id] if self.names else str(class_id)

    def palette(self, classes: int) -> list[list[int]]:
        """A colour per class: the declared ones, else spread evenly around the hue circle."""
        if self.colors:
            return [list(c) for c in self.colors]
        import colorsys

        return [
            [round(255 * v) for v in colorsys.hsv_to_rgb(i / classes, 0.65, 0.9)]
            for i in range(classes)
        ]


def read_labels_file(path: str | Path) -> tuple[int, Labels]:
    """``data.label_nc`` and ``data.labels`` of a YAML file (a training config, or the
    ``labels.yaml`` that ``translate prepare worldmaps-labels`` writes); ``ValueError`` in one
    line naming the file and the key."""
    import yaml

    try:
        tree = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: not a readable YAML file ({type(exc).__name__})") from None
    section = tree.get("data") if isinstance(tree, dict) else None
    if not isinstance(section, dict) or section.get("label_nc") is None:
        raise ValueError(f"{path}: no data.label_nc (the number of classes); add it")
    given = section.get("labels") or {}
    known = {f.name for f in dataclasses.fields(Labels)}
    if not isinstance(given, dict) or set(given) - known:
        raise ValueError(f"{path}: data.labels takes {', '.join(sorted(known))}")
    try:
        labels = Labels(**given)
        labels.check_count(section["label_nc"])
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return section["label_nc"], labels


def class_counts(ids: np.ndarray, classes: int, ignore: int | None = None) -> np.ndarray:
    """Pixels per class id (``classes`` counts, int64) of an integer map whose ids are below
    ``classes`` or ``ignore`` (checked by the reader); ignored pixels are not counted."""
    ids = ids.ravel()
    if ignore is not None:
        ids = ids[ids != ignore]
    return np.bincount(ids.astype(np.int64), minlength=classes)[:classes]


def one_hot(ids: torch.Tensor, classes: int, ignore: int | None = None) -> torch.Tensor:
    """Integer ids ``(..., H, W)`` -> float ``(..., classes, H, W)`` of 0 and 1 (what a labels
    generator takes); ``ignore`` pixels, and any id out of range, are all zeros."""
    import torch
    import torch.nn.functional as F

    ids = ids.long()
    valid = (ids >= 0) & (ids < classes)
    if ignore is not None:
        valid &= ids != ignore
    out = F.one_hot(torch.where(valid, ids, 0), classes).movedim(-1, -3).float()
    return out * valid.unsqueeze(-3)


def colour_one_hot(hot: torch.Tensor, palette: list[list[int]]) -> torch.Tensor:
    """One-hot maps ``(N, classes [+ extra channels], H, W)`` -> their colours ``(N, 3, H, W)``
    in [-1, 1], a class's ``palette`` colour per pixel (ignored pixels black; channels past
    the palette, such as instance edges, left out): a label map as a sample grid shows it."""
    import torch

    colours = torch.tensor(palette, dtype=hot.dtype, device=hot.device) / 127.5
    return torch.einsum("nchw,cd->ndhw", hot[:, : len(palette)], colours) - 1


def instance_edges(instances: torch.Tensor) -> torch.Tensor:
    """Float ``(H, W)``: 1 where a pixel's instance id differs from a 4-neighbour's, on both
    sides of the boundary (pix2pixHD's edge map), else 0."""
    import torch

    edge = torch.zeros(instances.shape, dtype=torch.bool)
    across = instances[:, 1:] != instances[:, :-1]
    edge[:, 1:] |= across
    edge[:, :-1] |= across
    down = instances[1:, :] != instances[:-1, :]
    edge[1:, :] |= down
    edge[:-1, :] |= down
    return edge.float()


def count_classes(
    files: list[Path], classes: int, labels: Labels, key: str
) -> tuple[np.ndarray, list[str]]:
    """Pixels per class over the label maps ``files`` and a line for each file that is no
    label map of ``classes`` (its mode, or its largest id out of range, naming ``key``, where
    the number of classes comes from). Files that cannot be read at all are left to the
    caller's own check."""
    total = np.zeros(classes, np.int64)
    problems = []
    for path in files:
        try:
            ids = read_label_map(path, classes, labels.ignore, key)
        except LabelMapError as exc:
            problems.append(str(exc))
        except ImageReadError:
            continue
        else:
            total += class_counts(ids, classes, labels.ignore)
    return total, problems


def describe_counts(counts: np.ndarray, labels: Labels) -> str:
    """The classes present of all, those absent, and each present class's share of the
    labelled pixels, e.g. ``5 of 6 classes (absent: ice); sea 61.0%, shelf 8.2%, ...``."""
    present = np.flatnonzero(counts)
    absent = [labels.name(int(i)) for i in np.flatnonzero(counts == 0)]
    line = f"{len(present)} of {len(counts)} classes"
    if absent:
        line += f" (absent: {', '.join(absent)})"
    total = counts.sum()
    if total:
        shares = ", ".join(f"{labels.name(int(i))} {100 * counts[i] / total:.1f}%" for i in present)
        line += f"; {shares}"
    return line
