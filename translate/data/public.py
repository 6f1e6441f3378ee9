"""The reference code's public pix2pix and CycleGAN datasets: fetched by name, checked,
extracted safely and laid out as the configs expect (``datasets/NAME/train`` ... or
``datasets/NAME/trainA`` ...)."""

from __future__ import annotations

import os
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from translate.data.layout import PAIRED, UNPAIRED, DatasetError, find_layout
from translate.download import fetch, server, translate_home

PIX2PIX = ("facades", "cityscapes", "maps", "edges2shoes", "edges2handbags", "night2day")
CYCLEGAN = (
    "horse2zebra", "apple2orange", "summer2winter_yosemite", "monet2photo", "cezanne2photo",
    "ukiyoe2photo", "vangogh2photo", "maps", "cityscapes", "facades", "iphone2dslr_flower",
)  # fmt: skip
NAMES = tuple(sorted(set(PIX2PIX + CYCLEGAN)))
JUNK = ("__MACOSX",)  # folders some zip tools add; never part of a dataset


@dataclass(frozen=True)
class PublicDataset:
    name: str
    data: str  # paired (pix2pix, aligned A|B .tar.gz) or unpaired (CycleGAN, .zip)

    @property
    def filename(self) -> str:
        return f"{self.name}.tar.gz" if self.data == PAIRED else f"{self.name}.zip"

    @property
    def url(self) -> str:
        kind = "pix2pix" if self.data == PAIRED else "cyclegan"
        return f"{server()}/{kind}/datasets/{self.filename}"

    def command(self, root: Path) -> str:
        """The command that fetches it into ``root/NAME``."""
        flag = " --unpaired" if self.data == UNPAIRED and self.name in PIX2PIX else ""
        where = "" if root == Path("datasets") else f" --root {root}"
        return f"translate prepare download {self.name}{flag}{where}"


def public_dataset(name: str, unpaired: bool = False) -> PublicDataset:
    """The dataset ``name``; names of both kinds (facades, maps, cityscapes) mean the
    pix2pix one unless ``unpaired``."""
    if name not in NAMES:
        raise DatasetError(f"unknown dataset {name!r}; public datasets: {', '.join(NAMES)}")
    if unpaired and name not in CYCLEGAN:
        raise DatasetError(f"{name} is a pix2pix (paired) dataset only; drop --unpaired")
    return PublicDataset(name, UNPAIRED if unpaired or name not in PIX2PIX else PAIRED)


def missing_data_hint(root: str | os.PathLike[str], data: str) -> str:
    """How to get a dataset folder that is missing: the download command when the folder
    is named after a public dataset of that kind, else where the layouts are described."""
    root = Path(root)
    if root.name in (PIX2PIX if data == PAIRED else CYCLEGAN):
        dataset = public_dataset(root.name, unpaired=data == UNPAIRED)
        return f"get it with: {dataset.command(root.parent)}"
    return "datasets/README.md describes the layouts and `translate prepare` builds some"


def _safe_names(names: list[str], archive: Path) -> None:
    """Refuse an archive with a member that would land outside the target folder."""
    for name in names:
        path = PurePosixPath(name.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or PureWindowsPath(name).drive:
            raise DatasetError(f"{archive}: refusing member {name!r}: it points outside the folder")


def extract(archive: Path, dest: Path) -> None:
    """Check every member's checksum and path, then extract regular files and folders only.

    A corrupt archive raises :class:`DatasetError`; so does a member named with ``..``, an
    absolute path, a link or a device file.
    """
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                bad = zf.testzip()
                if bad is not None:
                    raise DatasetError(f"{archive}: corrupt archive (bad checksum in {bad})")
                _safe_names(zf.namelist(), archive)
                for info in zf.infolist():
                    if (info.external_attr >> 16) & 0o170000 == 0o120000:
                        raise DatasetError(f"{archive}: refusing symbolic link {info.filename!r}")
                zf.extractall(dest)
            return
        with tarfile.open(archive, "r:*") as tf:
            members = tf.getmembers()
            _safe_names([m.name for m in members], archive)
            odd = [m.name for m in members if not (m.isfile() or m.isdir())]
            if odd:
                raise DatasetError(f"{archive}: refusing links or special files: {odd[:5]}")
            tf.extractall(dest, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise DatasetError(f"{archive}: corrupt archive ({exc})") from None


def _move_into(top: Path, target: Path) -> None:
    entries = [p for p in sorted(top.iterdir()) if p.name not in JUNK and p.name[0] != "."]
    clash = [str(target / p.name) for p in entries if (target / p.name).exists()]
    if clash:
        raise DatasetError(f"already there: {', '.join(clash)}; remove it or give another --root")
    target.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        entry.replace(target / entry.name)


def download_dataset(
    name: str, root: str | os.PathLike[str] = "datasets", unpaired: bool = False,
    progress: bool = True,
) -> Path:  # fmt: skip
    """Fetch (or resume) the archive into ``TRANSLATE_HOME/downloads``, check and extract it
    into ``root/NAME``; returns that folder. A corrupt archive is deleted, so the next call
    downloads it afresh; a good one is deleted once extracted."""
    dataset = public_dataset(name, unpaired)
    archive = fetch(dataset.url, translate_home() / "downloads" / dataset.filename, progress)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=root) as tmp:
        try:
            extract(archive, Path(tmp))
        except DatasetError as exc:
            archive.unlink()
            message = f"{exc}; deleted it: run the command again to download it afresh"
            raise DatasetError(message) from None
        found = [p for p in Path(tmp).iterdir() if p.name not in JUNK]
        top = found[0] if len(found) == 1 and found[0].is_dir() else Path(tmp)
        _move_into(top, root / name)
    find_layout(root / name, dataset.data).train_split()  # the layout the configs expect
    archive.unlink()
    return root / name
