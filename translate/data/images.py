"""Reading and writing images as HWC uint8 arrays, whatever their mode on disk."""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from translate.atomic import atomic_write_bytes

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
ALPHA_MODES = ("composite", "drop", "keep")


class ImageReadError(ValueError):
    """An image that cannot be read; the message starts with the file's path."""


def set_max_image_pixels(n: int | None) -> None:
    """Set the decompression-bomb limit (None turns it off)."""
    Image.MAX_IMAGE_PIXELS = n


def _to_8bit(img: Image.Image) -> Image.Image:
    # 16-bit and float modes: PIL's convert("L") clips instead of scaling, so scale by hand.
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        top = 1.0 if arr.max() <= 1.0 else 255.0
        return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return img


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)


# The channel counts an image file can supply: gray, gray+alpha, RGB, RGBA.
FILE_CHANNELS = (1, 2, 3, 4)


def read_image(
    path: str | os.PathLike[str],
    channels: int | None = 3,
    alpha: str = "composite",
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Read an image file as an HWC uint8 array with ``channels`` channels: 1 (gray), 3
    (RGB), or 2 and 4 (gray and RGB plus alpha, opaque where the file has none); None keeps
    the file's own: 1 for a gray file (L, LA, 16-bit or float gray), else 3. Image files hold
    no other counts: models taking them are given arrays or tensors.

    ``alpha``: ``composite`` blends transparent pixels onto ``background``, ``drop``
    discards the alpha channel, ``keep`` appends it as an extra channel. A multi-frame file
    (multi-page TIFF, APNG, animated WebP or GIF) gives its first frame.
    """
    return read_image_with_info(path, channels, alpha, background)[0]


@dataclass(frozen=True)
class ImageInfo:
    """What a file holds besides the first frame's pixels."""

    frames: int = 1
    icc_profile: bytes | None = None


def read_image_with_info(
    path: str | os.PathLike[str],
    channels: int | None = 3,
    alpha: str = "composite",
    background: tuple[int, int, int] = (255, 255, 255),
) -> tuple[np.ndarray, ImageInfo]:
    """:func:`read_image`, plus the file's frame count and ICC profile."""
    if channels not in (*FILE_CHANNELS, None):
        raise ValueError(
            f"channels must be 1, 2, 3, 4 (gray, gray+alpha, RGB, RGBA) or None, got {channels}; "
            "image files hold no other counts"
        )
    if alpha not in ALPHA_MODES:
        raise ValueError(f"alpha must be one of {ALPHA_MODES}, got {alpha!r}")
    path = Path(path)
    try:
        with _open_regular(path) as fh, Image.open(fh) as img:
            info = ImageInfo(getattr(img, "n_frames", 1), img.info.get("icc_profile") or None)
            img = ImageOps.exif_transpose(img)
            img.load()
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{path}: image too large ({exc})") from exc
    except Exception as exc:  # PIL raises many types for corrupt data
        raise ImageReadError(f"{path}: not a readable image ({unreadable_reason(exc)})") from exc
    return image_to_array(img, channels, alpha, background), info


# The modes whose pixels are class ids as stored: gray, palette indices (VOC, Cityscapes), 16 bit.
LABEL_MODES = ("L", "P", "I;16")


def label_array(img: Image.Image, classes: int, where: str = "label map") -> np.ndarray:
    """The class ids of a single-channel label image, HW uint8 or uint16, never colour
    converted (a palette image gives its indices); ``ValueError`` in one line naming
    ``where`` for another mode or an id of ``classes`` or more."""
    if img.mode not in LABEL_MODES:
        raise ValueError(
            f"{where}: a label map is one channel of class ids (PNG mode L, P or I;16), "
            f"this image is {img.mode}"
        )
    ids = np.asarray(img)
    top = int(ids.max()) if ids.size else 0
    if top >= classes:
        raise ValueError(
            f"{where}: class id {top} is not below the model's {classes} classes (ids 0 to "
            f"{classes - 1})"
        )
    return ids


def read_label_map(path: str | os.PathLike[str], classes: int) -> np.ndarray:
    """:func:`label_array` of the file at ``path``, EXIF orientation applied (a transpose:
    no interpolation); errors start with the path."""
    path = Path(path)
    try:
        with _open_regular(path) as fh, Image.open(fh) as img:
            img = ImageOps.exif_transpose(img)
            img.load()
    except ImageReadError:
        raise
    except Exception as exc:  # PIL raises many types for corrupt data
        raise ImageReadError(f"{path}: not a readable image ({unreadable_reason(exc)})") from exc
    try:
        return label_array(img, classes, str(path))
    except ValueError as exc:
        raise ImageReadError(str(exc)) from None


def _file_kind(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"


def _open_regular(path: Path) -> io.BufferedReader:
    """Open ``path`` for reading, refusing anything but a regular file before any read.

    O_NONBLOCK: opening a named pipe would otherwise wait forever for a writer.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError as exc:
        raise ImageReadError(f"{path}: file not found") from exc
    except OSError as exc:
        why = "a symbolic link loop" if exc.errno == errno.ELOOP else exc.strerror
        raise ImageReadError(f"{path}: cannot open ({why})") from exc
    kind = _file_kind(os.fstat(fd).st_mode)
    if kind is not None:
        os.close(fd)
        raise ImageReadError(f"{path}: not a regular file ({kind})")
    return os.fdopen(fd, "rb")


def unreadable_reason(exc: Exception) -> str:
    """Why PIL could not read an image, in words a user can act on: for a file of no format
    it knows, PIL's own words name the file handle it read from, not the file."""
    if isinstance(exc, UnidentifiedImageError):
        return (
            "no image format PIL knows: damaged, or not an image; re-save it as PNG or JPEG, "
            "or move it out of the way"
        )
    return str(exc)


def is_gray(img: Image.Image) -> bool:
    """Whether ``img`` is a gray image (with or without alpha), whatever its bit depth."""
    bands = img.getbands()
    return bands[0] in ("L", "I", "F", "1") and len(bands) <= 2


def image_to_array(
    img: Image.Image,
    channels: int | None = 3,
    alpha: str = "composite",
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """A PIL image already in memory as :func:`read_image` would return it."""
    if channels is None:
        channels = 1 if is_gray(img) else 3
    if channels in (2, 4):  # the alpha channel is data: kept, opaque where there is none
        arr = image_to_array(img, channels - 1, "keep", background)
        if arr.shape[2] < channels:
            arr = np.concatenate([arr, np.full_like(arr[:, :, :1], 255)], axis=2)
        return arr
    img = _to_8bit(img)
    alpha_band = None
    if _has_alpha(img):
        rgba = img.convert("RGBA")
        alpha_band = rgba.getchannel("A")
        if alpha == "composite":
            base = Image.new("RGBA", rgba.size, (*background, 255))
            img = Image.alpha_composite(base, rgba).convert("RGB")
        else:
            img = rgba.convert("RGB")
    img = img.convert("L" if channels == 1 else "RGB")
    arr = np.array(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if alpha == "keep" and alpha_band is not None:
        arr = np.concatenate([arr, np.asarray(alpha_band, dtype=np.uint8)[:, :, None]], axis=2)
    return np.ascontiguousarray(arr)


def write_image(
    path: str | os.PathLike[str],
    array: np.ndarray,
    quality: int | None = None,
    icc_profile: bytes | None = None,
) -> None:
    """Write an HWC (or HW) uint8 array atomically; the format comes from the suffix.

    ``icc_profile`` is embedded where the format holds one and its colour space (RGB or
    gray) is the image's; otherwise it is left out rather than mislabel the pixels.
    """
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        raise ValueError(f"{path}: write_image needs uint8 data, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    img = Image.fromarray(arr)
    kwargs: dict[str, object] = {} if quality is None else {"quality": quality}
    if Path(path).suffix.lower() in (".jpg", ".jpeg") and img.mode == "RGBA":
        img = img.convert("RGB")
    fmt = Image.registered_extensions().get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown image format for suffix {Path(path).suffix!r}")
    if icc_profile is not None and fmt in _ICC_FORMATS and _icc_fits(icc_profile, img.mode):
        kwargs["icc_profile"] = icc_profile
    # Encoded in memory first: atomic_write_bytes then knows the size the file must have.
    encoded = io.BytesIO()
    img.save(encoded, format=fmt, **kwargs)
    atomic_write_bytes(path, encoded.getbuffer())


_ICC_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF")


def _icc_fits(profile: bytes, mode: str) -> bool:
    """Whether an ICC profile's colour space (header bytes 16-20) describes ``mode`` pixels."""
    space = profile[16:20]
    return space == b"GRAY" if mode in ("L", "LA") else space == b"RGB "


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


@dataclass
class FileScan:
    """The entries under a folder whose names were asked for: ``files`` to read (sorted;
    entries that cannot be inspected, such as symlink loops, included so that reading them
    reports why) and ``not_files``: (path, what it is) for named pipes, sockets, devices and
    folders, which are never opened (a named pipe would hang the reader)."""

    files: list[Path] = field(default_factory=list)
    not_files: list[tuple[Path, str]] = field(default_factory=list)


def list_images(root: str | os.PathLike[str]) -> list[Path]:
    """All image files under ``root``, recursive and sorted; hidden entries are skipped."""
    return list_files(root, is_image_path)


def list_files(root: str | os.PathLike[str], accept: Callable[[Path], bool]) -> list[Path]:
    """The files under ``root`` whose paths ``accept`` takes, recursive and sorted; hidden
    folders are skipped."""
    return scan_files(root, accept).files


def scan_files(root: str | os.PathLike[str], accept: Callable[[Path], bool]) -> FileScan:
    """:func:`list_files` that also names the accepted entries that are not regular files."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    scan = FileScan()
    seen: set[tuple[int, int]] = set()
    # followlinks with an inode set: symlinked folders are read once, loops end.
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            path = Path(dirpath) / name
            if not accept(path):
                continue
            try:
                kind = _file_kind(os.stat(path).st_mode)
            except OSError:  # a loop or a broken link: the reader names the reason
                kind = None
            if kind is None:
                scan.files.append(path)
            else:
                scan.not_files.append((path, kind))
    scan.files.sort()
    scan.not_files.sort()
    return scan
