"""The reference code's public pix2pix and CycleGAN datasets, and the super-resolution sets
(DIV2K for training, Set5 and Set14 for evaluation): fetched by name, checked, extracted
safely and laid out as the configs expect (``datasets/NAME/train`` ... or
``datasets/NAME/trainA`` ...; the SR sets as the ``hr`` layout)."""

from __future__ import annotations

import os
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from translate.core.download import fetch, server, translate_home
from translate.data.layout import HR, LABELS, PAIRED, UNPAIRED, DatasetError, find_layout

PIX2PIX = ("facades", "cityscapes", "maps", "edges2shoes", "edges2handbags", "night2day")
CYCLEGAN = (
    "horse2zebra", "apple2orange", "summer2winter_yosemite", "monet2photo", "cezanne2photo",
    "ukiyoe2photo", "vangogh2photo", "maps", "cityscapes", "facades", "iphone2dslr_flower",
)  # fmt: skip
GAN_NAMES = tuple(sorted(set(PIX2PIX + CYCLEGAN)))
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
    if name not in GAN_NAMES:
        raise DatasetError(f"unknown dataset {name!r}; public datasets: {', '.join(NAMES)}")
    if unpaired and name not in CYCLEGAN:
        raise DatasetError(f"{name} is a pix2pix (paired) dataset only; drop --unpaired")
    return PublicDataset(name, UNPAIRED if unpaired or name not in PIX2PIX else PAIRED)


@dataclass(frozen=True)
class SRArchive:
    """One archive of a super-resolution set: where it is, and which of its files make
    which split (``pattern`` matched anywhere in it; ``strip`` cut from each file's stem)."""

    host: str
    path: str
    split: str
    pattern: str
    strip: str = ""

    @property
    def url(self) -> str:
        # A mirror serves each file at the path it has on its own server.
        return os.environ.get("TRANSLATE_MIRROR", self.host).rstrip("/") + self.path

    @property
    def filename(self) -> str:
        return PurePosixPath(self.path).name


DIV2K_HOST = "https://data.vision.ee.ethz.ch"
# SelfExSR's (Huang et al. 2015) packaging of the classic test sets, as its README links them.
SELFEXSR_HOST = "https://uofi.box.com"
# Their HR images of the x4 folder: cropped to a multiple of 4, as the x4 benchmarks use them.
SELFEXSR_HR = "image_SRF_4/*_SRF_4_HR.png"
SR_DATASETS: dict[str, tuple[SRArchive, ...]] = {
    "div2k": (
        SRArchive(DIV2K_HOST, "/cvl/DIV2K/DIV2K_train_HR.zip", "train", "DIV2K_train_HR/*.png"),
        SRArchive(DIV2K_HOST, "/cvl/DIV2K/DIV2K_valid_HR.zip", "val", "DIV2K_valid_HR/*.png"),
    ),
    "set5": (
        SRArchive(SELFEXSR_HOST, "/shared/static/kfahv87nfe8ax910l85dksyl2q212voc.zip", "test",
                  SELFEXSR_HR, "_SRF_4_HR"),
    ),
    "set14": (
        SRArchive(SELFEXSR_HOST, "/shared/static/igsnfieh4lz68l926l8xbklwsnnk8we9.zip", "test",
                  SELFEXSR_HR, "_SRF_4_HR"),
    ),
}  # fmt: skip
NAMES = tuple(sorted(GAN_NAMES + tuple(SR_DATASETS)))


def missing_data_hint(root: str | os.PathLike[str], data: str) -> str:
    """How to get a dataset folder that is missing: the download command when the folder
    is named after a public dataset of that kind, else where the layouts are described."""
    root = Path(root)
    if data == LABELS:
        return "`translate prepare worldmaps-labels DIR` makes one (docs/label-maps.md)"
    if data == HR:
        if root.name in SR_DATASETS:
            where = "" if root.parent == Path("datasets") else f" --root {root.parent}"
            return f"get it with: translate prepare download {root.name}{where}"
    elif root.name in (PIX2PIX if data == PAIRED else CYCLEGAN):
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


@contextmanager
def _extracted(url: str, filename: str, root: Path, progress: bool) -> Iterator[Path]:
    """Fetch (or resume) ``url`` into ``TRANSLATE_HOME/downloads``, check it and extract it
    into a temporary folder under ``root``, yielded. A corrupt archive is deleted, so the
    next call downloads it afresh; a good one is deleted once the caller has taken its files."""
    archive = fetch(url, translate_home() / "downloads" / filename, progress)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{filename}-", dir=root) as tmp:
        try:
            extract(archive, Path(tmp))
        except DatasetError as exc:
            archive.unlink()
            message = f"{exc}; deleted it: run the command again to download it afresh"
            raise DatasetError(message) from None
        yield Path(tmp)
    archive.unlink()


def download_dataset(
    name: str, root: str | os.PathLike[str] = "datasets", unpaired: bool = False,
    progress: bool = True,
) -> Path:  # fmt: skip
    """Fetch a public dataset and lay it out in ``root/NAME``; returns that folder. The
    archive is checked and extracted by :func:`_extracted`; the SR sets go to
    :func:`download_sr_dataset`."""
    if name in SR_DATASETS:
        if unpaired:
            raise DatasetError(
                f"{name} is a super-resolution set (HR images only); drop --unpaired"
            )
        return download_sr_dataset(name, root, progress)
    dataset = public_dataset(name, unpaired)
    root = Path(root)
    with _extracted(dataset.url, dataset.filename, root, progress) as tmp:
        found = [p for p in tmp.iterdir() if p.name not in JUNK]
        top = found[0] if len(found) == 1 and found[0].is_dir() else tmp
        _move_into(top, root / name)
        find_layout(root / name, dataset.data).train_split()  # the layout the configs expect
    return root / name


def download_sr_dataset(
    name: str, root: str | os.PathLike[str] = "datasets", progress: bool = True
) -> Path:
    """Fetch the super-resolution set ``name`` (``SR_DATASETS``) into ``root/NAME`` as the
    ``hr`` layout (DIV2K: ``train/`` and ``val/``; Set5, Set14: ``test/``); returns that
    folder. Each split is moved in whole once its archive is extracted, so a split already
    there is complete and a second run only fetches the ones missing."""
    if name not in SR_DATASETS:
        raise DatasetError(
            f"unknown dataset {name!r}; super-resolution sets: {', '.join(SR_DATASETS)}"
        )
    out = Path(root) / name
    for part in SR_DATASETS[name]:
        if (out / part.split).exists():
            continue
        with _extracted(part.url, part.filename, Path(root), progress) as tmp:
            files = sorted(p for p in tmp.rglob(part.pattern) if not set(JUNK) & set(p.parts))
            if not files:
                raise DatasetError(
                    f"{part.url}: no files matching {part.pattern} in the archive; is the "
                    "mirror serving another file?"
                )
            split = tmp / f".{part.split}"
            split.mkdir()
            for f in files:
                f.replace(split / f"{f.stem.removesuffix(part.strip)}{f.suffix}")
            out.mkdir(parents=True, exist_ok=True)
            split.replace(out / part.split)
    find_layout(out, HR)  # the layout the SR trainer and evaluation read
    return out
