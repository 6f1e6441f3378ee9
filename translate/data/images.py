"""Reading and writing images as HWC uint8 arrays, whatever their mode on disk."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from isal import isal_zlib
from PIL import Image, ImageOps, UnidentifiedImageError

from translate.core.atomic import atomic_open, atomic_write_bytes

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
ALPHA_MODES = ("composite", "drop", "keep")


class ImageReadError(ValueError):
    """An image that cannot be read; the message starts with the file's path."""


class LabelMapError(ImageReadError):
    """A readable file that is no label map of the classes asked for (another mode, an id out
    of range): a training set stops on it rather than skip it as unreadable."""


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
    keep_16bit: bool = False,
) -> tuple[np.ndarray, ImageInfo]:
    """:func:`read_image`, plus the file's frame count and ICC profile.

    ``keep_16bit`` with ``channels=None``: a 16-bit gray, RGB or RGBA file (PNG, TIFF)
    gives uint16 values as stored (alpha kept as ``alpha="keep"`` does), not 8 bits."""
    if channels not in (*FILE_CHANNELS, None):
        raise ValueError(
            f"channels must be 1, 2, 3, 4 (gray, gray+alpha, RGB, RGBA) or None, got {channels}; "
            "image files hold no other counts"
        )
    if alpha not in ALPHA_MODES:
        raise ValueError(f"alpha must be one of {ALPHA_MODES}, got {alpha!r}")
    deep = None
    with _pil_open(Path(path)) as (fh, img):
        info = ImageInfo(getattr(img, "n_frames", 1), img.info.get("icc_profile") or None)
        if keep_16bit and channels is None and _is_16bit_colour(img):
            # PIL decodes 16-bit RGB(A) to 8 bits: OpenCV keeps them (BGR order).
            fh.seek(0)
            deep = cv2_decode(fh.read())
            deep = _oriented(deep[..., [2, 1, 0, 3][: deep.shape[2]]], img)
        else:
            img = ImageOps.exif_transpose(img)
            img.load()
    if deep is not None:
        return np.ascontiguousarray(deep), info
    if keep_16bit and channels is None and img.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(img, dtype=np.uint16)[:, :, None].copy(), info
    return image_to_array(img, channels, alpha, background), info


def _is_16bit_colour(img: Image.Image) -> bool:
    """Whether an opened, not yet decoded, RGB(A) file stores 16 bits a sample (PIL's raw
    mode says so: ``RGB;16B`` for PNG, ``RGB;16N`` for TIFF)."""
    if img.mode not in ("RGB", "RGBA"):
        return False
    modes = (t.args[0] if isinstance(t.args, tuple) else t.args for t in img.tile)
    return any(";16" in str(mode) for mode in modes)


def cv2_decode(data: bytes) -> np.ndarray:
    """An encoded image's pixels as OpenCV stores them (HWC, BGR(A), any depth)."""
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError("OpenCV cannot decode it")
    return arr[:, :, None] if arr.ndim == 2 else arr


# EXIF orientation -> the array operation that shows the picture upright (PIL's
# exif_transpose, for arrays PIL cannot hold).
_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def _oriented(arr: np.ndarray, img: Image.Image) -> np.ndarray:
    orientation = img.getexif().get(0x0112, 1)
    return _ORIENT[orientation](arr) if orientation in _ORIENT else arr


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says, before its pixels are decoded: the upright size
    and about how many bytes the decoded pixels take."""

    height: int
    width: int
    nbytes: int


def read_header(path: str | os.PathLike[str]) -> ImageHeader:
    """The header of the image file at ``path`` (no pixels decoded: a PNG's orientation is
    read from an eXIf chunk before its pixels, where writers put it); ``ImageReadError``
    (starting with the path) when it cannot be read."""
    with _pil_open(Path(path)) as (_, img):
        width, height = img.size
        # Image's own getexif: a PNG's decodes every pixel to look for an eXIf chunk
        # after them (tripling a conversion's decoding); this reads what precedes them.
        if Image.Image.getexif(img).get(0x0112, 1) in (5, 6, 7, 8):  # turned a quarter
            width, height = height, width
        deep = _is_16bit_colour(img) or img.mode.startswith("I") or img.mode == "F"
        samples = len(img.getbands()) * (2 if deep else 1)
    return ImageHeader(height, width, height * width * samples)


# The modes whose pixels are class ids as stored: gray, palette indices (VOC, Cityscapes), 16 bit.
LABEL_MODES = ("L", "P", "I;16")


def label_array(
    img: Image.Image,
    classes: int,
    where: str = "label map",
    ignore: int | None = None,
    key: str | None = None,
) -> np.ndarray:
    """The class ids of a single-channel label image, HW uint8 or uint16, never colour
    converted (a palette image gives its indices); ``ValueError`` in one line naming
    ``where`` for another mode or an id of ``classes`` or more (``ignore``, the id of
    unlabelled pixels, excepted). ``key`` names where ``classes`` comes from (a config key,
    an option); without it, the model's classes."""
    if img.mode not in LABEL_MODES:
        raise ValueError(
            f"{where}: a label map is one channel of class ids (PNG mode L, P or I;16), "
            f"this image is {img.mode}"
        )
    ids = np.asarray(img)
    bad = ids[ids >= classes]
    if ignore is not None:
        bad = bad[bad != ignore]
    if not bad.size:
        return ids
    limit = f"{key} {classes}" if key else f"the model's {classes} classes"
    unlabelled = "" if ignore is None else f", or the ignore id {ignore}"
    raise ValueError(
        f"{where}: class id {int(bad.max())} is not below {limit} (ids 0 to {classes - 1}"
        f"{unlabelled})"
    )


def write_label_map(
    path: str | os.PathLike[str], ids: np.ndarray, palette: list[list[int]] | None = None
) -> None:
    """Write HW integer class ids as a PNG that :func:`read_label_map` reads back unchanged:
    a palette image (mode ``P``, ``palette`` an ``[r, g, b]`` per id, so viewers show the
    classes in colour) or 8-bit gray without a palette when every id is below 256, else 16-bit
    gray. Atomic."""
    if ids.ndim != 2 or ids.dtype.kind not in "iu":
        raise ValueError(
            f"{path}: a label map is an HxW array of integers, got {ids.dtype} {ids.shape}"
        )
    top = int(ids.max()) if ids.size else 0
    if (ids.size and int(ids.min()) < 0) or top > 2**16 - 1:
        raise ValueError(f"{path}: class ids must lie in 0 to 65535")
    if top < 256:
        img = Image.fromarray(ids.astype(np.uint8))
        if palette is not None:
            img.putpalette([v for color in palette for v in color])  # now mode P, same indices
    else:
        img = Image.fromarray(ids.astype(np.uint16))  # mode I;16
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getbuffer())


def read_label_map(
    path: str | os.PathLike[str], classes: int, ignore: int | None = None, key: str | None = None
) -> np.ndarray:
    """:func:`label_array` of the file at ``path``, EXIF orientation applied (a transpose:
    no interpolation); errors start with the path."""
    with _pil_open(Path(path)) as (_, img):
        img = ImageOps.exif_transpose(img)
        img.load()
    try:
        return label_array(img, classes, str(path), ignore, key)
    except ValueError as exc:
        raise LabelMapError(str(exc)) from None


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


@contextlib.contextmanager
def _pil_open(path: Path) -> Iterator[tuple[io.BufferedReader, Image.Image]]:
    """The regular file ``path`` and PIL's image of it; whatever fails in the block is an
    ``ImageReadError`` starting with the path."""
    try:
        with _open_regular(path) as fh, Image.open(fh) as img:
            yield fh, img
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{path}: image too large ({exc})") from exc
    except Exception as exc:  # PIL raises many types for corrupt data
        raise ImageReadError(f"{path}: not a readable image ({unreadable_reason(exc)})") from exc


def unreadable_reason(exc: Exception) -> str:
    """Why PIL could not read an image, in words a user can act on: for a file of no format
    it knows, PIL's own words name the file handle it read from, not the file."""
    if isinstance(exc, UnidentifiedImageError):
        return (
            "no image format PIL knows: damaged, or not an image; re-save it as PNG or JPEG, "
            "or move it out of the way"
        )
    return str(exc)


def image_to_array(
    img: Image.Image,
    channels: int | None = 3,
    alpha: str = "composite",
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """A PIL image already in memory as :func:`read_image` would return it."""
    if channels is None:  # 1 for gray (with or without alpha, any bit depth), else 3
        bands = img.getbands()
        channels = 1 if bands[0] in ("L", "I", "F", "1") and len(bands) <= 2 else 3
    if channels in (2, 4):  # the alpha channel is data: kept, opaque where there is none
        arr = image_to_array(img, channels - 1, "keep", background)
        if arr.shape[2] < channels:
            arr = np.concatenate([arr, np.full_like(arr[:, :, :1], 255)], axis=2)
        return arr
    img = _to_8bit(img)
    alpha_band = None
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
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
    png_compression: int | None = None,
) -> None:
    """Write an HWC (or HW) uint8 array atomically; the format comes from the suffix.
    PNG and TIFF also take uint16 (16 bits a sample; gray, RGB or RGBA).
    ``png_compression``: a PNG's zlib level, 0-9 (None: the encoder's default, 6 in PIL);
    at level 1 (``FAST_PNG``) :func:`png_bytes` encodes it, with PNG's Sub filter on every row.

    ``icc_profile`` is embedded where the format holds one and its colour space (RGB or
    gray) is the image's; otherwise it is left out rather than mislabel the pixels (16-bit
    colour, which OpenCV encodes, carries none).
    """
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if png_compression == FAST_PNG and writes_rows(path) and arr.dtype in (np.uint8, np.uint16):
        # PIL tries PNG's five filters on every row and keeps the best, most of its time at
        # level 1 (the demo's 256 px outputs: 6.7-7.5 ms of CPU time, against 3.1-3.8 for
        # png_rows' Sub filter alone, both deflating with zlib, for files 4 % larger); at the
        # fast level, speed is the point, and png_rows deflates with ISA-L (_deflater). PIL
        # writes the other levels.
        atomic_write_bytes(path, png_bytes(arr, icc_profile, path))
        return
    if arr.dtype == np.uint16 and Path(path).suffix.lower() in DEEP_SUFFIXES:
        if arr.ndim == 3:
            atomic_write_bytes(path, _cv2_encode(path, arr, png_compression))
            return
        arr = arr.astype("<u2")  # PIL's I;16 is little-endian
    elif arr.dtype != np.uint8:
        raise ValueError(
            f"{path}: write_image needs uint8 data (uint16 for {'/'.join(DEEP_SUFFIXES)}), "
            f"got {arr.dtype}"
        )
    img = Image.fromarray(arr)
    kwargs: dict[str, object] = {} if quality is None else {"quality": quality}
    if Path(path).suffix.lower() in (".jpg", ".jpeg") and img.mode == "RGBA":
        img = img.convert("RGB")
    fmt = Image.registered_extensions().get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown image format for suffix {Path(path).suffix!r}")
    if icc_profile is not None and fmt in _ICC_FORMATS and _icc_fits(icc_profile, img.mode):
        kwargs["icc_profile"] = icc_profile
    if png_compression is not None and fmt == "PNG":
        kwargs["compress_level"] = png_compression
    # Encoded in memory first: atomic_write_bytes then knows the size the file must have.
    encoded = io.BytesIO()
    img.save(encoded, format=fmt, **kwargs)
    atomic_write_bytes(path, encoded.getbuffer())


# The zlib level written for speed (OpenCV's default too): the converter's and the server's
# default, the pixels the same at every level; encoding is a conversion's largest cost after
# the model.
FAST_PNG = 1


def _deflater(level: int) -> Any:
    """The compressor of a PNG's image data at zlib ``level``: at ``FAST_PNG``, ISA-L's
    level 1 (isal), which deflated the demo's 256 px outputs in 0.4 of the CPU time of
    zlib's level 1 with run-length matches for files 2 % larger (the whole write, 0.58),
    128 px map tiles in 0.3 for the same size, 16-bit samples in 0.14 for smaller files;
    zlib's at every other level."""
    return isal_zlib.compressobj(1) if level == FAST_PNG else zlib.compressobj(level)


_ICC_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF")
# The suffixes written with 16 bits a sample.
DEEP_SUFFIXES = (".png", ".tif", ".tiff")


def _cv2_encode(
    path: str | os.PathLike[str], arr: np.ndarray, png_compression: int | None = None
) -> bytes:
    """16-bit RGB(A) ``arr`` encoded as ``path``'s suffix says (PIL holds no such mode);
    ``png_compression``: a PNG's zlib level (None: OpenCV's default, 1)."""
    import cv2

    if arr.shape[2] not in (3, 4):
        raise ValueError(
            f"{path}: 16-bit images are gray, RGB or RGBA, not {arr.shape[2]} channels"
        )
    params = [] if png_compression is None else [cv2.IMWRITE_PNG_COMPRESSION, png_compression]
    bgr = arr[..., [2, 1, 0, 3][: arr.shape[2]]]
    ok, data = cv2.imencode(Path(path).suffix.lower(), bgr, params)
    if not ok:
        raise ValueError(f"{path}: OpenCV cannot encode a 16-bit image as {Path(path).suffix}")
    return data.tobytes()


def to_8bit(arr: np.ndarray) -> np.ndarray:
    """uint16 values as uint8 (rounded to the nearest of 256 levels); uint8 as it is."""
    if arr.dtype == np.uint8:
        return arr
    return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def writes_rows(path: str | os.PathLike[str]) -> bool:
    """Whether :func:`png_rows` writes ``path`` row by row (PNG); others are written whole."""
    return Path(path).suffix.lower() == ".png"


# PNG colour types by channel count: gray, gray+alpha, RGB, RGBA.
_PNG_COLOUR = {1: 0, 2: 4, 3: 2, 4: 6}
_IDAT_SIZE = 1 << 20  # compressed bytes gathered into one IDAT chunk
# Filtered bytes handed to the compressor at a time, whatever the bands written: ISA-L's
# output depends on how its input is split, and a file's bytes must not depend on its bands.
_DEFLATE_BLOCK = 1 << 18


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@contextlib.contextmanager
def png_rows(
    path: str | os.PathLike[str],
    height: int,
    width: int,
    channels: int,
    dtype: np.dtype | type = np.uint8,
    icc_profile: bytes | None = None,
    compression: int = -1,
) -> Iterator[Callable[[np.ndarray], None]]:
    """Write a PNG image a band of rows at a time: yields ``write(rows)``, which takes
    the next rows (HW or HWC, uint8 or uint16 as ``dtype``) and compresses them onto the
    file, so no whole image is held. Atomic like every output: the file appears when the
    block ends with all ``height`` rows written, else not at all.

    Each row is filtered with PNG's Sub filter (each byte less the one a pixel to its
    left), which suits photographs, and deflated as one stream at zlib level
    ``compression`` (0-9; -1: zlib's default, 6) by :func:`_deflater`'s compressor, in
    blocks of the same size whatever the bands, so the bytes are those of a whole image.
    """
    with (
        atomic_open(path) as out,
        _png_stream(out, path, height, width, channels, dtype, icc_profile, compression) as write,
    ):
        yield write


def png_bytes(
    arr: np.ndarray, icc_profile: bytes | None = None, name: str | os.PathLike[str] = "PNG"
) -> bytes:
    """An HW or HWC image (uint8 or uint16, 1-4 channels) as a PNG's bytes at the fast level,
    as :func:`png_rows` writes them (a whole image at that level, the server's replies);
    errors name ``name``."""
    buffer = io.BytesIO()
    channels = arr.shape[2] if arr.ndim == 3 else 1
    with _png_stream(
        buffer, name, *arr.shape[:2], channels, arr.dtype, icc_profile, FAST_PNG
    ) as write:
        write(arr)
    return buffer.getvalue()


@contextlib.contextmanager
def _png_stream(
    out: BinaryIO,
    name: str | os.PathLike[str],
    height: int,
    width: int,
    channels: int,
    dtype: np.dtype | type,
    icc_profile: bytes | None,
    compression: int,
) -> Iterator[Callable[[np.ndarray], None]]:
    """:func:`png_rows`' writer onto the open binary file ``out``; errors name ``name``."""
    dtype = np.dtype(dtype)
    if dtype not in (np.uint8, np.uint16) or channels not in _PNG_COLOUR:
        raise ValueError(
            f"{name}: PNG holds 1-4 channels of uint8 or uint16, not {channels} of {dtype}"
        )
    pixel = channels * dtype.itemsize
    written = 0
    out.write(b"\x89PNG\r\n\x1a\n")
    header = struct.pack(
        ">IIBBBBB", width, height, 8 * dtype.itemsize, _PNG_COLOUR[channels], 0, 0, 0
    )
    out.write(_png_chunk(b"IHDR", header))
    if icc_profile is not None and _icc_fits(icc_profile, "L" if channels < 3 else "RGB"):
        out.write(_png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc_profile)))
    stream = _deflater(compression)
    filtered_bytes = bytearray()  # filtered rows not yet compressed
    pending = bytearray()  # compressed bytes not yet written

    def deflate(final: bool) -> None:
        start = 0
        while len(filtered_bytes) - start >= _DEFLATE_BLOCK:
            with memoryview(filtered_bytes)[start : start + _DEFLATE_BLOCK] as block:
                pending.extend(stream.compress(block))
            start += _DEFLATE_BLOCK
        if final:
            with memoryview(filtered_bytes)[start:] as rest:
                pending.extend(stream.compress(rest) + stream.flush())
            start = len(filtered_bytes)
        del filtered_bytes[:start]
        if final or len(pending) >= _IDAT_SIZE:
            out.write(_png_chunk(b"IDAT", bytes(pending)))
            pending.clear()

    def write(rows: np.ndarray) -> None:
        nonlocal written
        rows = np.asarray(rows)
        if (
            rows.dtype != dtype
            or rows.shape[1:2] != (width,)
            or rows.size != len(rows) * width * channels
        ):
            raise ValueError(
                f"{name}: rows of {width} x {channels} {dtype} expected, got "
                f"{rows.shape} {rows.dtype}"
            )
        if written + len(rows) > height:
            raise ValueError(f"{name}: more than the {height} rows declared")
        raw = np.ascontiguousarray(rows, dtype=dtype.newbyteorder(">")).view(np.uint8)
        raw = raw.reshape(len(rows), width * pixel)
        filtered = np.empty((len(rows), 1 + width * pixel), np.uint8)
        filtered[:, 0] = 1  # Sub
        filtered[:, 1 : 1 + pixel] = raw[:, :pixel]
        np.subtract(raw[:, pixel:], raw[:, :-pixel], out=filtered[:, 1 + pixel :])
        filtered_bytes.extend(filtered.data)
        deflate(final=False)
        written += len(rows)

    yield write
    if written != height:
        raise ValueError(f"{name}: {written} of {height} rows written")
    deflate(final=True)
    out.write(_png_chunk(b"IEND", b""))


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
    return scan_files(root, is_image_path).files


def scan_files(root: str | os.PathLike[str], accept: Callable[[Path], bool]) -> FileScan:
    """The files under ``root`` whose paths ``accept`` takes, recursive and sorted (hidden
    folders skipped), and the accepted entries that are not regular files."""
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
