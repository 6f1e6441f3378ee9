"""The ``sr-photos`` dataset: real camera photographs as paired x4 super-resolution data.

The photos come from Debian packages (wallpapers that happen to be photographs) and from
scikit-image's sample images. Each was looked at and only camera photographs were kept:
no renderings, illustrations, gradients, logos, text or heavily filtered pictures. Every
photo belongs to one split, chosen by hand in :data:`PHOTOS` so that each split mixes the
packages (landscapes, close-ups, animals, objects): ``train``, ``val`` (model selection),
``test`` (held out for the figures) and ``check`` (plasma-workspace-wallpapers, an
independent set that is never trained nor selected on).

B (HR) is the photo shrunk so its long side is ``long_side`` px (Lanczos; never enlarged),
its sides cut to a multiple of the scale; A (LR) is B shrunk by the scale with PIL's
bicubic filter, the protocol the SR figures use.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from translate.data.images import write_image

SPLITS = ("train", "val", "test", "check")
SKIMAGE = "scikit-image"


@dataclass(frozen=True)
class Photo:
    """One kept photograph: the package that ships it, its file (under /usr/share for a
    Debian package, under ``skimage/data`` for scikit-image) and its split."""

    package: str
    file: str
    split: str


def _photos(package: str, folder: str, split_files: dict[str, str]) -> list[Photo]:
    # split_files: split -> space-separated file names in folder
    return [
        Photo(package, f"{folder}/{name}" if folder else name, split)
        for split, names in split_files.items()
        for name in names.split()
    ]


# Rejected, by package: lomiri-wallpapers (two renderings of one gradient), ukui-wallpapers
# (all renderings and illustrations), gnome-backgrounds and sway-backgrounds (renderings,
# patterns, a logo), mate-backgrounds' abstract/ and desktop/ folders (renderings, a
# painting, logos, blurred colour fields). Among the lomiri photos: Infinite-Sea (a
# composite), analogpattern (a texture under a colour wash) and greentock (heavily tinted);
# lomiri-wallpapers-20.04's other three are renderings. scikit-image: camera (grey),
# motorcycle_right (the left photo's stereo twin: it would leak into the other split),
# hubble_deep_field (a telescope image), and the rest: microscopy, textures, synthetic
# images, text.
PHOTOS: tuple[Photo, ...] = (
    *_photos("lomiri-wallpapers-16.04", "backgrounds", {
        "train": "Dragonfly_by_Bolly.jpg Picture_0B_by_freespace.jpg free_by_Peter_Nerlich.jpg "
                 "life_by_Aitzol_Berasategi.jpg",
        "val": "Wine_by_Jakkub_Mede.jpg picosdeeuropa_by_Aitzol_Berasategi.jpg",
        "test": "Bridge_by_Sander_Klootwijk.jpg Picture_1A_by_freespace.jpg "
                "aitzgorri_by_Aitzol_Berasategi.jpg friends_by_Aitzol_Berasategi.jpg "
                "seeding_by_Clements_Engelhardt.jpg sunset_by_Aitzol_Berasategi.jpg",
    }),
    *_photos("lomiri-wallpapers-20.04", "backgrounds", {"test": "Kleiber_by_Lukas_Baubkus.jpg"}),
    *_photos("mate-backgrounds", "backgrounds/mate/nature", {
        "train": "Blinds.jpg Dune.jpg FreshFlower.jpg GreenMeadow.jpg RainDrops.jpg Wood.jpg",
        "val": "Garden.jpg TwoWings.jpg",
        "test": "Aqua.jpg LadyBird.jpg Storm.jpg YellowFlower.jpg",
    }),
    *_photos(SKIMAGE, "", {
        "train": "astronaut.png motorcycle_left.png rocket.jpg",
        "val": "coffee.png",
        "test": "chelsea.png",
    }),
    # Never trained nor selected on. Rejected: the renderings and paintings (Altai, Autumn,
    # Canopee, Cascade, Cluster, Elarun, Flow, FlyingKonqui, Honeywave, IceCold, Kay,
    # Kokkini, MilkyWay, Opal, PastelHills, Patak, SafeLanding, Shell, Volna).
    *_photos("plasma-workspace-wallpapers", "wallpapers", {
        "check": " ".join(f"{name}/contents/images/{size}.jpg" for name, size in (
            ("BytheWater", "1920x1080"), ("ColdRipple", "1920x1080"),
            ("ColorfulCups", "2560x1600"), ("DarkestHour", "1920x1080"),
            ("EveningGlow", "1920x1080"), ("FallenLeaf", "2560x1600"), ("Grey", "2560x1600"),
            ("Kite", "2560x1600"), ("OneStandsOut", "2560x1600"), ("Path", "2560x1600"),
            ("summer_1am", "2560x1600"),
        )),
    }),
)  # fmt: skip

TRAINING_PACKAGES = sorted(
    {p.package for p in PHOTOS if p.split != "check" and p.package != SKIMAGE}
)
APT_HINT = "apt-get install -y " + " ".join(TRAINING_PACKAGES)


@dataclass(frozen=True)
class Source:
    """A photo file to write, under ``name`` (no suffix), into ``split``."""

    path: Path
    name: str
    split: str


def _skimage_data() -> Path | None:
    # find_spec locates the package without importing it (scipy and friends, seconds).
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def installed_photos(
    photos: Sequence[Photo] = PHOTOS, debian_root: str | os.PathLike[str] = "/usr/share"
) -> tuple[list[Source], list[str]]:
    """The :data:`PHOTOS` found on this machine, and the packages missing for them."""
    skimage = _skimage_data()
    sources, missing = [], []
    for photo in photos:
        root = skimage if photo.package == SKIMAGE else Path(debian_root)
        path = None if root is None else root / photo.file
        if path is None or not path.is_file():
            missing.append(photo.package)
            continue
        # plasma's file names are sizes (1920x1080.jpg): the photo's folder names it
        plasma = photo.package == "plasma-workspace-wallpapers"
        name = f"{photo.package}_{Path(photo.file).parts[1] if plasma else Path(photo.file).stem}"
        sources.append(Source(path, name, photo.split))
    return sources, sorted(set(missing))


def high_resolution(path: Path, long_side: int, scale: int) -> Image.Image:
    """The photo at ``path`` (EXIF orientation applied, RGB) shrunk with Lanczos so its long
    side is ``long_side`` px (a smaller photo keeps its size: an enlarged one would be a
    blurred target), then cut at the right and bottom to a multiple of ``scale``."""
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img).convert("RGB")
    factor = long_side / max(img.size)
    if factor < 1:
        size = tuple(max(scale, round(side * factor)) for side in img.size)
        img = img.resize(size, Image.LANCZOS)
    w, h = (side - side % scale for side in img.size)
    if w == 0 or h == 0:
        raise ValueError(f"{path}: {img.width}x{img.height} px is smaller than the scale {scale}")
    return img.crop((0, 0, w, h))


def _starts(length: int, window: int) -> list[int]:
    # Windows spread evenly about half a window apart, the first and last flush with the
    # sides: every pixel is covered, and no window nearly repeats another.
    if length <= window:
        return [0]
    gaps = max(1, round((length - window) / (window / 2)))
    return [round(i * (length - window) / gaps) for i in range(gaps + 1)]


def sub_images(
    image: Image.Image, size: int, scale: int
) -> list[tuple[tuple[int, int], Image.Image]]:
    """Overlapping ``size`` px squares of ``image`` (about half a square apart, covering it;
    a side smaller than ``size`` taken whole), keyed by their top-left corner; corners are
    multiples of ``scale``, so the squares lie on the LR photo's pixel grid."""
    w, h = image.size
    side_w, side_h = (min(size - size % scale, side) for side in (w, h))
    return [
        ((y, x), image.crop((x, y, x + side_w, y + side_h)))
        for y in (s - s % scale for s in _starts(h, side_h))
        for x in (s - s % scale for s in _starts(w, side_w))
    ]


def build_sr_photos(
    out: str | os.PathLike[str],
    sources: Sequence[Source],
    long_side: int = 1024,
    scale: int = 4,
    train_size: int | None = 480,
    progress: bool = True,
) -> dict[str, tuple[int, int]]:
    """Write ``sources`` as paired SR data, ``out/<split>/{A,B}/<name>.png``; returns
    (photos, image pairs) per split.

    B is :func:`high_resolution`, A is B shrunk ``scale`` times with PIL's bicubic.
    ``train_size`` cuts the train photos into overlapping sub-images of that many HR px
    (:func:`sub_images`), so a training step decodes small files, not whole photos;
    None keeps them whole. ``out`` must not exist yet: the data is written beside it and
    moved into place when complete.
    """
    out = Path(out)
    if not sources:
        raise ValueError(f"no photo package is installed: {APT_HINT}")
    if out.exists():
        raise ValueError(f"{out} exists: remove it or name another folder")
    bad = sorted({s.split for s in sources} - set(SPLITS))
    if bad:
        raise ValueError(f"unknown split(s) {bad}; choose from {SPLITS}")
    seen: dict[tuple[str, str], Path] = {}
    for s in sources:  # one photo per name: a second would overwrite the first
        if seen.setdefault((s.split, s.name), s.path) != s.path:
            raise ValueError(f"{s.path} and {seen[s.split, s.name]} are both {s.split}/{s.name}")
    if train_size is not None and train_size < scale:
        raise ValueError(f"train_size {train_size} is below the scale {scale}")
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)  # a build that was stopped part way
    counts: dict[str, tuple[int, int]] = {}
    for source in tqdm(sources, desc="sr-photos", unit="photo", disable=not progress):
        hr = high_resolution(source.path, long_side, scale)
        cut = source.split == "train" and train_size is not None
        pieces = sub_images(hr, train_size, scale) if cut else [(None, hr)]
        for corner, piece in pieces:
            name = (
                source.name if corner is None else f"{source.name}_{corner[0]:04d}_{corner[1]:04d}"
            )
            lr = piece.resize((piece.width // scale, piece.height // scale), Image.BICUBIC)
            folder = partial / source.split
            write_image(folder / "B" / f"{name}.png", np.asarray(piece))
            write_image(folder / "A" / f"{name}.png", np.asarray(lr))
        photos, pairs = counts.get(source.split, (0, 0))
        counts[source.split] = (photos + 1, pairs + len(pieces))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial.rename(out)
    return {split: counts[split] for split in SPLITS if split in counts}
