"""Dataset layouts: which folders of a dataset root hold which split, for which kind of data.

One folder can serve several trainers (``datasets/worldmaps`` holds aligned pairs in
``train/``, ``val/`` and unpaired domains in ``trainA/`` ... ``testB/``), so
:func:`detect_layouts` returns every layout found and :func:`find_layout` the one a trainer's
data kind (``paired``, ``unpaired`` or ``hr``) reads. The ``hr`` layout (high-resolution
images of any shape, for super-resolution) reads the folders the aligned layout reads, as
single images: :func:`detect_layouts` lists it only when asked, since telling the two apart
takes each image's size. Nothing here decodes pixels.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from PIL import Image

from translate.data.images import is_image_path, list_images

PAIRED, UNPAIRED, HR = "paired", "unpaired", "hr"
LABELS = "labels"  # label maps (class ids) in A/ and their images in B/: folders only
DATA_KINDS = (PAIRED, UNPAIRED, HR, LABELS)
ROOT_SPLIT = "."  # a dataset without split folders: the files of the root itself
SPLIT_NAMES = ("train", "val", "test")  # reported (as empty) even when they hold no images
MAX_NAMED = 30
T = TypeVar("T")
HOLDOUT = "holdout"  # validation split taken out of the training files
HOLDOUT_EVERY = 10  # every 10th training file (sorted by path) is held out


class DatasetError(ValueError):
    """A dataset folder that cannot be used as it is; the message says why."""


def name_some(paths: list[str]) -> str:
    """The first ``MAX_NAMED`` entries, one per line, and how many more there are."""
    shown = "\n  ".join(paths[:MAX_NAMED])
    more = f"\n  ... and {len(paths) - MAX_NAMED} more" if len(paths) > MAX_NAMED else ""
    return f"\n  {shown}{more}"


def by_stem(folder: Path) -> dict[str, Path]:
    """The images under ``folder`` keyed by relative path without extension."""
    out: dict[str, Path] = {}
    for p in list_images(folder):
        key = p.relative_to(folder).with_suffix("").as_posix()
        if key in out:
            raise DatasetError(f"{p}: same name as {out[key]} with another extension")
        out[key] = p
    return out


def _lone(files: dict[str, Path], others: dict[str, Path], other_dir: Path) -> list[str]:
    """A line for each of ``files`` (by stem, :func:`by_stem`) that ``others`` lacks."""
    by_case = {k.casefold(): others[k] for k in others.keys() - files.keys()}
    lines = []
    for key in sorted(files.keys() - others.keys()):
        twin = by_case.get(key.casefold())
        hint = f"; {twin} differs only in case: rename one to match" if twin else ""
        lines.append(f"{files[key]} (no partner in {other_dir}{hint})")
    return lines


def pair_up(dir_a: Path, dir_b: Path) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Files of ``dir_a`` and ``dir_b`` paired by relative path and stem (extensions may
    differ), and a line for each file without a partner; a would-be partner whose name
    differs only in case is named in that line, with the fix."""
    a, b = by_stem(dir_a), by_stem(dir_b)
    pairs = [(a[k], b[k]) for k in sorted(a.keys() & b.keys())]
    return pairs, _lone(a, b, dir_b) + _lone(b, a, dir_a)


def without_partner(lines: list[str]) -> str:
    """The problem :func:`pair_up`'s lines make, naming the first ``MAX_NAMED`` files."""
    return f"{len(lines)} file(s) without a partner:" + name_some(lines)


def match_pairs(dir_a: Path, dir_b: Path) -> list[tuple[Path, Path]]:
    """:func:`pair_up`'s pairs; raises :class:`DatasetError` naming every file that lacks a
    partner."""
    pairs, lone = pair_up(dir_a, dir_b)
    if lone:
        raise DatasetError(without_partner(lone))
    return pairs


def _root_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (not in its subfolders), sorted."""
    files = (p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    return sorted(p for p in files if is_image_path(p))


@dataclass(frozen=True)
class Layout:
    """One way of reading a dataset root.

    ``name`` is ``aligned`` (A|B side by side in one file), ``folders`` (matching files in
    ``A/`` and ``B/``), ``unpaired`` (``<split>A/`` and ``<split>B/``) or ``hr`` (single
    high-resolution images in ``train/``, ``val/``, ``test/`` or the root); ``splits`` maps
    each split present to its A and B folders (the same folder twice for aligned and hr).
    """

    name: str
    root: Path
    splits: dict[str, tuple[Path, Path]]

    @property
    def data(self) -> str:
        """The kind of data it holds: ``paired`` or ``unpaired``."""
        return {"unpaired": UNPAIRED, "hr": HR}.get(self.name, PAIRED)

    @property
    def title(self) -> str:
        titles = {
            "aligned": "paired aligned A|B", "folders": "paired A/ B/", "hr": "high-resolution",
        }  # fmt: skip
        return titles.get(self.name, self.name)

    def dirs(self, split: str) -> tuple[Path, Path]:
        """The A and B folders of ``split``; an unknown split names the splits present."""
        if split not in self.splits:
            present = ", ".join(
                "'.' (the folder itself)" if s == ROOT_SPLIT else repr(s) for s in self.splits
            )
            raise DatasetError(
                f"{self.root}: no split {split!r} in its {self.title} layout "
                f"(splits present: {present or 'none'})"
            )
        return self.splits[split]

    def train_split(self) -> str:
        """``train``, or ``.`` for a dataset without split folders; with neither, a
        :class:`DatasetError` names the splits present, what is wrong with them and the fix."""
        if ROOT_SPLIT in self.splits and "train" not in self.splits:
            return ROOT_SPLIT
        try:
            self.dirs("train")
        except DatasetError as exc:
            raise DatasetError(f"{exc}; {self._no_train_fix()}") from None
        return "train"

    def _no_train_fix(self) -> str:
        """What ``translate data check`` finds in the splits present, and how to get a
        training split out of them."""
        first, *others = self.splits
        if self.name == "unpaired":
            if others:
                return "name the training domains trainA/ and trainB/"
            return f"rename {first}A/ and {first}B/ to trainA/ and trainB/"
        if self.name == "folders":
            return "name the training folders A/train and B/train (or put the files in A/, B/)"
        if self.name == HR:
            return f"name the folder of training images train/ (or put them in {self.root})"
        sizes: dict[Path, tuple[int, int]] = {}
        for dir_a, _ in self.splits.values():
            for path in list_images(dir_a):
                try:
                    sizes[path] = image_size(path)
                except Exception:  # unreadable files are data check's to list, not ours
                    continue
        wrong = not_aligned(sizes)
        if not wrong:
            if others:
                return f"name the folder of training pairs train/ (or put them in {self.root})"
            return f"rename {first}/ to train/"
        found = f"{len(wrong)} of its {len(sizes)} images are not A|B pairs, e.g. {wrong[0]}"
        if len(others) != 1:
            return f"{found}; {ALIGNED_RULE}"
        return (
            f"{found}; {ALIGNED_RULE}: if {first}/ and {others[0]}/ hold the A and B of each "
            "pair under the same names, rename them A/ and B/"
        )

    def val_split(self, requested: str) -> str:
        """The split to validate on: ``auto`` is ``val``, else ``test``, else ``holdout`` (a
        part of the training files kept out of training); ``train`` validates on the
        training files; any other name must be present."""
        if requested == "auto":
            return next((s for s in ("val", "test") if s in self.splits), HOLDOUT)
        if requested == HOLDOUT:
            return HOLDOUT
        if requested == "train":
            return self.train_split()
        self.dirs(requested)
        return requested

    def pairs(self, split: str) -> list[tuple[Path, Path]]:
        """The (A, B) files of a paired split; an aligned file is its own partner. Files
        without a partner raise :class:`DatasetError`, naming each."""
        if self.name == "folders":
            return match_pairs(*self.dirs(split))
        return self.some_pairs(split)[0]

    def some_pairs(self, split: str) -> tuple[list[tuple[Path, Path]], list[str]]:
        """The pairs of a paired split that have both files, and a line for each file that
        lacks its partner (:func:`pair_up`)."""
        dir_a, dir_b = self.dirs(split)
        if self.name == "folders":
            return pair_up(dir_a, dir_b)
        if self.name == "aligned":
            return [(f, f) for f in self.images(split)], []
        raise DatasetError(f"{self.root}: holds unpaired data; it has no pairs")

    def images(self, split: str) -> list[Path]:
        """The image files of a split of an ``hr`` layout (or the A|B files of an aligned
        one), sorted; the root split holds the root's own files, not its subfolders'."""
        if self.name not in ("hr", "aligned"):
            raise DatasetError(f"{self.root}: its {self.title} layout holds no single images")
        folder = self.dirs(split)[0]
        return _root_images(folder) if split == ROOT_SPLIT else list_images(folder)

    def domains(self, split: str) -> tuple[list[Path], list[Path]]:
        """The A files and the B files of a split, unmatched."""
        if self.name != "unpaired":
            pairs = self.pairs(split)
            return [a for a, _ in pairs], [b for _, b in pairs]
        dir_a, dir_b = self.dirs(split)
        return list_images(dir_a), list_images(dir_b)


def hold_out(files: list[T], held: bool) -> list[T]:
    """The held-out part of a split's files (``held``) or the rest: every
    ``HOLDOUT_EVERY``-th file in path order, or the last one of a smaller split. The same
    files on every run and every resume, whatever the seed or ``data.val_size``."""
    if len(files) < 2:
        raise DatasetError(
            f"{len(files)} training file(s): too few to hold some out for validation; add a "
            "val split or set data.val_split=train to validate on the training images"
        )
    every = min(HOLDOUT_EVERY, len(files))
    return [f for i, f in enumerate(files) if (i % every == every - 1) == held]


def detect_layouts(root: str | os.PathLike[str], hr: bool = False) -> list[Layout]:
    """Every layout found in ``root``: unpaired, then A/ B/ folders, then aligned files and,
    with ``hr``, the same folders read as high-resolution images.

    Folders one layout claims (``trainA``, ``A``, ``train/A`` ...) are no split of another.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder does not exist")
    subdirs = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and p.name[0] != "."}
    layouts: list[Layout] = []
    claimed: set[str] = set()

    unpaired = {
        n[:-1]: (subdirs[n], subdirs[n[:-1] + "B"])
        for n in subdirs
        if len(n) > 1 and n.endswith("A") and n[:-1] + "B" in subdirs
    }
    if unpaired:
        layouts.append(Layout("unpaired", root, unpaired))
        claimed |= {f"{s}{d}" for s in unpaired for d in "AB"}

    folders: dict[str, tuple[Path, Path]] = {}
    if "A" in subdirs and "B" in subdirs:
        a, b = subdirs["A"], subdirs["B"]
        common = [s for s in SPLIT_NAMES if (a / s).is_dir() and (b / s).is_dir()]
        folders = {s: (a / s, b / s) for s in common} or {ROOT_SPLIT: (a, b)}
        claimed |= {"A", "B"}
    for name, d in subdirs.items():
        if name not in claimed and (d / "A").is_dir() and (d / "B").is_dir():
            folders[name] = (d / "A", d / "B")
            claimed.add(name)
    if folders:
        layouts.append(Layout("folders", root, folders))
        claimed.add("inst")  # instance maps beside A/ (inst/train): no split of its own

    aligned = {
        n: (d, d)
        for n, d in subdirs.items()
        # a split name, or any folder with images somewhere under it
        if n not in claimed
        and (n in SPLIT_NAMES or any(is_image_path(Path(f)) for *_, fs in os.walk(d) for f in fs))
    }
    if _root_images(root):
        aligned[ROOT_SPLIT] = (root, root)
    if aligned:
        layouts.append(Layout("aligned", root, aligned))
        if hr:
            layouts.append(Layout("hr", root, aligned))
    return layouts


def find_layout(root: str | os.PathLike[str], data: str) -> Layout:
    """The layout of ``root`` that holds ``data`` (``paired``, ``unpaired``, ``hr`` or
    ``labels``, which only A/ B/ folders hold: a label map is no half of an aligned image); A/
    B/ folders win over aligned files. Raises :class:`DatasetError` saying what the folder
    holds."""
    if data not in DATA_KINDS:
        raise ValueError(f"data kind must be one of {', '.join(DATA_KINDS)}, got {data!r}")
    layouts = detect_layouts(root, hr=data == HR)
    for layout in layouts:
        if layout.data == data or (data == LABELS and layout.name == "folders"):
            return layout
    found = ", ".join(layout.title for layout in layouts) or "no images"
    need = {
        UNPAIRED: "trainA/ and trainB/ (optionally testA/, testB/)",
        PAIRED: "aligned A|B images in train/, val/ or A/ and B/ folders",
        HR: "images in train/ (optionally val/, test/)",
        LABELS: "label maps in A/ and their images in B/ folders (train/A and train/B, ...)",
    }[data]
    raise DatasetError(f"{root}: holds {found}; {data} data needs {need}")


ORIENTATION = 0x0112  # the EXIF tag; values 5 to 8 turn the image a quarter
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Keywords of PNG text chunks that PIL reads an orientation from: EXIF as hex, XMP
PNG_ORIENTATION_TEXT = (b"Raw profile type exif", b"XML:com.adobe.xmp")


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) as displayed (EXIF orientation applied), from the headers and
    metadata alone: no pixel is decoded (PIL's ``getexif`` decodes a whole PNG to reach an
    eXIf chunk after the pixel data; :func:`png_exif` seeks over it).

    Raises any error PIL raises for a file that is no image, OSError for a truncated PNG.
    """
    with Image.open(path) as img:
        width, height = img.size
        exif = png_exif(path) if img.format == "PNG" else None
        if exif is None:
            exif = img.getexif()
        rotated = exif.get(ORIENTATION, 1) in (5, 6, 7, 8)
    return (height, width) if rotated else (width, height)


def png_exif(path: Path) -> Image.Exif | None:
    """The EXIF of a PNG file, from its chunks, seeking over the data of every other chunk
    (the pixels' IDAT). None where a text chunk may hold an orientation (EXIF as hex, XMP),
    which PIL alone parses. A file that ends before its IEND chunk raises OSError."""
    exif = Image.Exif()
    # unbuffered: each chunk header is one small read, not a buffer's worth of pixel data
    with open(path, "rb", buffering=0) as fp:
        fp.seek(len(PNG_SIGNATURE))
        while True:
            head = fp.read(8)
            if len(head) < 8:
                raise OSError(f"{path}: truncated PNG (it ends before its IEND chunk)")
            length, kind = struct.unpack(">I4s", head)
            after = fp.tell() + length + 4  # the data, then its CRC
            if kind == b"IEND":
                return exif
            if kind == b"eXIf":
                data = fp.read(length)
                if len(data) < length:
                    raise OSError(f"{path}: truncated PNG (it ends inside its eXIf chunk)")
                exif.load(data)
            elif kind in (b"tEXt", b"zTXt", b"iTXt"):
                keyword = fp.read(min(length, 80)).partition(b"\0")[0]  # 79 bytes at most
                if keyword in PNG_ORIENTATION_TEXT:
                    return None
            fp.seek(after)


def not_aligned(sizes: dict[Path, tuple[int, int]]) -> list[str]:
    """Files that cannot be an A|B pair: an aligned image is exactly twice as wide as high."""
    return [f"{p} ({w}x{h})" for p, (w, h) in sizes.items() if w != 2 * h]


# How `translate prepare edges|grayscale` makes a photo of any shape an aligned pair's square
# half: cut its centre square, or squeeze all of it.
FITS = ("crop", "resize")
ALIGNED_RULE = (
    "an aligned image holds A and B side by side as two squares, so it is exactly twice "
    "as wide as high; put unaligned pairs in A/ and B/ folders (datasets/README.md)"
)
