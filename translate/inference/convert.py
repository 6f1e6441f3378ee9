"""Convert an image or a folder of images with a translator, mirroring the folder layout.

Decoding runs in a thread pool ahead of the model, encoding in another behind it (PIL and
zlib release the GIL while they work), so the three overlap; decoded images wait in
per-size buckets so that same-size images share a batch.
Every output is written atomically and an existing output is skipped unless ``overwrite``,
so an interrupted run is resumed by running it again.
"""

from __future__ import annotations

import os
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image
from tqdm import tqdm

from translate.data.images import (
    FileScan,
    ImageInfo,
    is_image_path,
    read_image_with_info,
    scan_files,
    write_image,
)
from translate.model_file import GeneratorFile
from translate.runtime import Ranks

from . import manifest
from .memory import MemoryBudget
from .translator import Translator

FORMATS = ("same", "png", "jpg", "webp")
FORMAT_ALIASES = {"jpeg": "jpg"}  # other names users give for a format
# Output formats that can hold an alpha channel; for the others it is dropped.
ALPHA_SUFFIXES = (".png", ".webp", ".tif", ".tiff")
_QUALITY_SUFFIXES = (".jpg", ".jpeg", ".webp")
CODEC = "h264"  # the default video encoder

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class ConvertSummary:
    """What a conversion did; ``failed`` holds (input path, reason) pairs, ``not_files``
    (path, what it is) for image-named entries that are not regular files (not read),
    ``first_frame_only`` (path, frames) for multi-frame inputs of which frame 1 was converted."""

    converted: int = 0
    skipped: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    not_files: list[tuple[Path, str]] = field(default_factory=list)
    first_frame_only: list[tuple[Path, int]] = field(default_factory=list)


@dataclass
class _Job:
    src: Path
    dst: Path
    image: np.ndarray | None = None
    info: ImageInfo = ImageInfo()


def shard(items: list[T], rank: int, world_size: int) -> list[T]:
    """This rank's share of a sorted list: every ``world_size``-th item, from ``rank``."""
    return items[rank::world_size]


def output_path(rel: Path, dst: Path, fmt: str) -> Path:
    """Where the translation of ``rel`` (relative to the input root) is written."""
    fmt = FORMAT_ALIASES.get(fmt, fmt)
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    out = dst / rel
    return out if fmt == "same" else out.with_suffix(f".{fmt}")


def writes_one_file(src: Path, dst: Path) -> bool:
    """Whether ``dst`` is the output file itself: one input image, and an output named with
    an image suffix that is not an existing folder."""
    return src.is_file() and is_image_path(src) and is_image_path(dst) and not dst.is_dir()


def plan(src: Path, dst: Path, fmt: str) -> tuple[list[_Job], list[tuple[Path, str]], FileScan]:
    """The (input, output) pairs, sorted by input, the inputs that fail already, and the scan
    of ``src``; refuses outputs that would hit inputs.

    Two inputs that map to one output (``a.png`` and ``a.jpg`` with ``--format png``) keep
    the first; the second is returned as a failure, as is a symbolic link loop. One image
    to an image file name (:func:`writes_one_file`) is written to that file.
    """
    one_file = writes_one_file(src, dst)
    if one_file:
        _check_suffix(dst, fmt)
    elif dst.exists() and not dst.is_dir():
        raise ValueError(
            f"{dst}: the output must be a folder (outputs mirror the input names), or, for "
            "one input image, a file name with an image suffix"
        )
    if src.is_dir():
        src_root = src.resolve()
        dst_res = dst.resolve()
        if dst_res == src_root or src_root in dst_res.parents:
            raise ValueError(
                f"{dst}: the output folder is inside the input folder {src}; "
                "choose an output folder outside it"
            )
        scan, root = scan_files(src, is_image_path), src
    elif src.is_file():
        if not is_image_path(src):
            raise ValueError(f"{src}: not an image file (expected one of the image suffixes)")
        scan, root = FileScan(files=[src]), src.parent
    elif src.exists():
        raise ValueError(f"{src}: not a regular file or folder")
    else:
        raise FileNotFoundError(f"{src}: no such file or directory")
    failures: list[tuple[Path, str]] = []
    resolved_inputs: set[Path] = set()
    inputs: list[Path] = []
    for path in scan.files:
        try:
            resolved_inputs.add(path.resolve())
            inputs.append(path)
        except (RuntimeError, OSError):  # Python 3.11/3.12 raise RuntimeError on a loop
            failures.append((path, "a symbolic link loop"))
    jobs: list[_Job] = []
    first_writer: dict[Path, Path] = {}
    for path in inputs:
        out = dst if one_file else output_path(path.relative_to(root), dst, fmt)
        try:
            key = out.resolve()
        except (RuntimeError, OSError):
            failures.append((path, f"the output {out} is a symbolic link loop"))
            continue
        if key in resolved_inputs:
            raise ValueError(f"{out}: refusing to write over an input file; choose another output")
        if key in first_writer:
            failures.append((path, f"same output {out} as {first_writer[key]}"))
            continue
        first_writer[key] = path
        jobs.append(_Job(path, out))
    return jobs, failures, scan


def _check_suffix(dst: Path, fmt: str) -> None:
    """A ``format`` other than ``same`` must be the one the output file's name says."""
    fmt = FORMAT_ALIASES.get(fmt, fmt)
    named = dst.suffix.lower().lstrip(".")
    if fmt != "same" and FORMAT_ALIASES.get(named, named) != fmt:
        raise ValueError(
            f"{dst}: --format {fmt}, but the output's name says {dst.suffix}; name it .{fmt} "
            "or leave --format out"
        )


@dataclass(frozen=True)
class ConvertOptions:
    """How :func:`convert_folder` writes; how images are translated is the Translator's.

    ``format``: one of ``FORMATS`` (``same`` keeps each input's suffix); ``quality``: JPEG
    and WebP quality; ``overwrite``: redo existing outputs (else skipped, so a rerun
    resumes); ``workers``: decoding threads and as many encoding ones (None: up to 8);
    ``max_pixels``: the most pixels of model input in one pass (None: what fits in half the
    free memory, estimated from the model), a larger image fails naming ``--tile``;
    ``codec``/``crf``: the video encoder (FFmpeg's name) and its constant rate factor (None:
    the encoder's default); ``resize_shorter``/``center_crop`` (images only): the reference's
    test-time resize and crop, as torchvision's ``Resize(N)`` and ``CenterCrop(M)`` on PIL
    images; the output is the translated crop.
    """

    format: str = "same"
    quality: int = 95
    overwrite: bool = False
    workers: int | None = None
    progress: bool = True
    max_pixels: int | None = None
    codec: str = CODEC
    crf: int | None = None
    resize_shorter: int | None = None
    center_crop: int | None = None

    def recorded(self) -> dict[str, Any]:
        """The options that change the outputs' bytes, as the manifest records them."""
        return {
            "format": FORMAT_ALIASES.get(self.format, self.format),
            "quality": self.quality,
            "codec": self.codec,
            "crf": self.crf,
            "resize_shorter": self.resize_shorter,
            "center_crop": self.center_crop,
        }


def claim_output(dst: Path, translator: Translator, options: ConvertOptions) -> None:
    """Write ``dst``'s manifest, or refuse (``ValueError``) when it holds the outputs of
    another model or other options and ``options.overwrite`` is off."""
    manifest.claim(dst, manifest.describe(translator, options.recorded()), options.overwrite)


def convert_folder(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    model: Translator | str | os.PathLike[str] | GeneratorFile,
    options: ConvertOptions | None = None,
    **changes: Any,
) -> ConvertSummary:
    """Translate the image ``src``, or every image under the folder ``src``, into ``dst``.

    ``dst`` mirrors the relative paths and names (the suffix changes with the format); for
    one image, ``dst`` may instead be the output file's name (``out.png``), which gets no
    manifest (it is skipped when it exists, unless ``overwrite``).
    ``model`` is a :class:`Translator`, or what :meth:`Translator.load` takes (loaded with
    its defaults); ``options`` (or ``changes`` to its fields, e.g. ``format="png"``) say how
    outputs are written. ``dst`` gets a manifest of the model and options; a run whose
    differ refuses unless ``overwrite``. Under torchrun each rank converts its share of the
    sorted file list.
    """
    options = replace(options or ConvertOptions(), **changes)
    src, dst = Path(src), Path(dst)
    jobs, failures, scan = plan(src, dst, options.format)
    ranks = Ranks.from_env()
    # Loaded even when every output exists: a wrong model or option is an error, not a no-op.
    translator = model if isinstance(model, Translator) else Translator.load(model)
    if translator.size is not None and options.resize_shorter is not None:
        raise ValueError("--size and --resize-shorter both resize the input; give one")
    if not writes_one_file(src, dst):
        claim_output(dst, translator, options)
    summary = ConvertSummary(
        failed=shard(failures, ranks.rank, ranks.world_size),
        not_files=shard(scan.not_files, ranks.rank, ranks.world_size),
    )
    todo = []
    for job in shard(jobs, ranks.rank, ranks.world_size):
        if job.dst.exists() and not options.overwrite:
            summary.skipped += 1
        else:
            todo.append(job)
    if not todo:
        return summary
    budget = MemoryBudget.for_translator(translator, options.max_pixels)
    batch_size = translator.batch_size
    workers = min(8, os.cpu_count() or 1) if options.workers is None else max(1, options.workers)
    desc = "convert" if ranks.world_size == 1 else f"convert (rank {ranks.rank})"
    with (
        ThreadPoolExecutor(workers, thread_name_prefix="decode") as readers,
        ThreadPoolExecutor(workers, thread_name_prefix="encode") as writers,
        tqdm(total=len(todo), unit="img", desc=desc, disable=not options.progress) as bar,
    ):

        def read(job: _Job) -> _Job | tuple[Path, str]:
            try:
                # The file's own channels, as Translator takes a PIL image: gray stays gray.
                image, job.info = read_image_with_info(job.src, None, alpha="keep")
                job.image = _resize_and_crop(image, options.resize_shorter, options.center_crop)
                return job
            except Exception as exc:  # any undecodable file is reported, never fatal
                return job.src, error_reason(exc, job.src)

        def fail(path: Path, reason: str) -> None:
            summary.failed.append((path, reason))
            bar.update(1)

        writes: deque[tuple[_Job, Future[None]]] = deque()
        decoded = _ordered_map(readers, read, todo, ahead=max(2 * batch_size, 2 * workers))
        for batch in _same_size_batches(decoded, fail, batch_size, pending=4 * batch_size):
            height, width = batch[0].image.shape[:2]
            # Refused before it runs: the OS would kill the whole run, not fail one file.
            too_large = budget.refuse(height, width)
            if too_large is not None:
                for job in batch:
                    fail(job.src, too_large)
                continue
            fits = budget.images_per_pass(height, width)
            for part in (batch[i : i + fits] for i in range(0, len(batch), fits)):
                for job, out in _translate(translator, part, fail):
                    out = _fit_alpha(out, job.dst)
                    q = options.quality if job.dst.suffix.lower() in _QUALITY_SUFFIXES else None
                    writes.append(
                        (job, writers.submit(write_image, job.dst, out, q, job.info.icc_profile))
                    )
            while len(writes) > 2 * batch_size + workers:
                _finish(writes.popleft(), summary, bar, fail)
        while writes:
            _finish(writes.popleft(), summary, bar, fail)
    return summary


def _translate(
    model: Translator, batch: list[_Job], fail: Callable[[Path, str], None]
) -> list[tuple[_Job, np.ndarray]]:
    """(job, output) for a same-size batch; a failure fails the whole batch."""
    try:
        outputs = model.translate_batch([job.image for job in batch])
    except Exception as exc:  # e.g. a device error: report, go on
        for job in batch:
            fail(job.src, f"translation failed ({exc})")
        return []
    finally:
        for job in batch:
            job.image = None
    return list(zip(batch, outputs, strict=True))


def _resize_and_crop(image: np.ndarray, shorter: int | None, crop: int | None) -> np.ndarray:
    """torchvision's ``Resize(shorter)`` then ``CenterCrop(crop)`` on the PIL image."""
    if shorter is not None:
        h, w = image.shape[:2]
        # torchvision: the short side becomes ``shorter``, the long one is truncated.
        size = (shorter, int(shorter * h / w)) if w <= h else (int(shorter * w / h), shorter)
        squeeze = image.shape[2] == 1
        pil = Image.fromarray(image[..., 0] if squeeze else image)
        image = np.asarray(pil.resize(size, Image.Resampling.BILINEAR))
        image = image[..., None] if squeeze else image
    if crop is not None:
        h, w = image.shape[:2]
        if crop > min(h, w):
            raise ValueError(f"{w}x{h} is smaller than --center-crop {crop}")
        top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
        image = image[top : top + crop, left : left + crop]
    return np.ascontiguousarray(image)


def error_reason(exc: BaseException, path: Path) -> str:
    """The error message without the leading path that image errors already carry."""
    return str(exc).removeprefix(f"{path}: ") or type(exc).__name__


def _fit_alpha(image: np.ndarray, dst: Path) -> np.ndarray:
    has_alpha = image.ndim == 3 and image.shape[2] in (2, 4)  # LA or RGBA
    if has_alpha and dst.suffix.lower() not in ALPHA_SUFFIXES:
        return image[..., :-1]
    return image


def _finish(
    write: tuple[_Job, Future[None]],
    summary: ConvertSummary,
    bar: tqdm,
    fail: Callable[[Path, str], None],
) -> None:
    job, future = write
    try:
        future.result()
    except Exception as exc:  # disk full, permissions: the input is reported as not converted
        fail(job.src, f"cannot write {job.dst} ({error_reason(exc, job.dst)})")
        return
    summary.converted += 1
    if job.info.frames > 1:
        summary.first_frame_only.append((job.src, job.info.frames))
    bar.update(1)


def _ordered_map(
    pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T], ahead: int
) -> Iterator[R]:
    """``map`` on a pool that keeps at most ``ahead`` results in flight, in input order."""
    it = iter(items)
    futures: deque[Future[R]] = deque(pool.submit(fn, item) for item in islice(it, ahead))
    while futures:
        result = futures.popleft().result()
        nxt = next(it, None)
        if nxt is not None:
            futures.append(pool.submit(fn, nxt))
        yield result


def _same_size_batches(
    decoded: Iterable[_Job | tuple[Path, str]],
    fail: Callable[[Path, str], None],
    batch_size: int,
    pending: int,
) -> Iterator[list[_Job]]:
    """Group decoded jobs by image shape; read failures go to ``fail`` on the way.

    A bucket is released when full, or (the fullest one) when ``pending`` images wait.
    """
    buckets: dict[tuple[int, ...], list[_Job]] = defaultdict(list)
    waiting = 0
    for item in decoded:
        if not isinstance(item, _Job):
            fail(*item)
            continue
        bucket = buckets[item.image.shape]
        bucket.append(item)
        waiting += 1
        if len(bucket) < batch_size and waiting < pending:
            continue
        full = len(bucket) >= batch_size
        shape = item.image.shape if full else max(buckets, key=lambda k: len(buckets[k]))
        waiting -= len(buckets[shape])
        yield buckets.pop(shape)
    yield from buckets.values()
