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
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image
from tqdm import tqdm

from translate.data.images import (
    ImageInfo,
    is_image_path,
    read_image_with_info,
    read_label_map,
    write_image,
)
from translate.model_file import LoadedModel

from .formats import OUTPUT_FORMATS, SAME, canonical, for_suffix, format_choices
from .options import ConvertOptions, ImageOptions
from .runner import ConvertSummary, Job, Run, run_conversion, shard
from .runner import writes_one_file as writes_one_file_of
from .translator import Translator

__all__ = ["ConvertOptions", "ConvertSummary", "IMAGES", "convert_folder", "shard"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Decoded:
    """A job whose input is read: the pixels (until translated) and what the file holds."""

    job: Job
    image: np.ndarray | None
    info: ImageInfo


def output_path(rel: Path, dst: Path, fmt: str) -> Path:
    """Where the translation of ``rel`` (relative to the input root) is written: its own
    suffix for ``same``, else the first suffix of the format ``fmt`` names."""
    out = dst / rel
    fmt = canonical(fmt)
    if fmt == SAME:
        return out
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"format must be one of {format_choices()}, got {fmt!r}")
    return out.with_suffix(OUTPUT_FORMATS[fmt].suffixes[0])


def writes_one_file(src: Path, dst: Path) -> bool:
    """Whether ``dst`` is the output file itself: one input image, and an output named with
    an image suffix that is not an existing folder."""
    return writes_one_file_of(src, dst, (IMAGES,))


def _check_suffix(dst: Path, fmt: str) -> None:
    """A ``format`` other than ``same`` must be the one the output file's name says."""
    fmt = canonical(fmt)
    named = for_suffix(dst.suffix)
    if fmt != SAME and (named is None or named.name != fmt):
        raise ValueError(
            f"{dst}: --format {fmt}, but the output's name says {dst.suffix}; name it .{fmt} "
            "or leave --format out"
        )


class ImageSource:
    """Image files as a conversion source (:mod:`translate.inference.runner`); each file's
    steps are :meth:`read`, the translator's ``translate_batch`` and :meth:`write`, which
    the pipeline (the module's docstring) runs in its threads."""

    noun = "image"
    groups = (ImageOptions,)

    def accepts(self, path: Path) -> bool:
        return is_image_path(path)

    def output(self, rel: Path, dst: Path, options: ConvertOptions) -> Path:
        return output_path(rel, dst, options.format)

    def check_file_output(self, dst: Path, options: ConvertOptions) -> None:
        _check_suffix(dst, options.format)

    def read(
        self, job: Job, options: ImageOptions, classes: int | None = None
    ) -> _Decoded | tuple[Path, str]:
        """The job's pixels, resized and cropped as asked, or (path, why) when unreadable.
        ``classes``: the file is a label map of ids below it (a labels model), read as
        stored and never resized (no interpolation invents ids)."""
        try:
            if classes is None:
                # The file's own channels, as Translator takes a PIL image: gray stays gray.
                image, info = read_image_with_info(job.src, None, alpha="keep")
            else:
                if options.resize_shorter is not None:
                    raise ValueError("a label map is not resized; leave --resize-shorter out")
                image, info = read_label_map(job.src, classes)[..., None], ImageInfo()
            image = _resize_and_crop(image, options.resize_shorter, options.center_crop)
        except Exception as exc:  # any undecodable file is reported, never fatal
            return job.src, error_reason(exc, job.src)
        return _Decoded(job, image, info)

    def write(self, decoded: _Decoded, output: np.ndarray, options: ImageOptions) -> None:
        """Write one translation atomically, as its output's format holds it."""
        dst = decoded.job.dst
        fmt = for_suffix(dst.suffix)
        has_alpha = output.ndim == 3 and output.shape[2] in (2, 4)  # LA or RGBA
        if has_alpha and not (fmt and fmt.alpha):
            output = output[..., :-1]
        quality = options.quality if fmt and fmt.quality else None
        icc = decoded.info.icc_profile if fmt and fmt.icc else None
        write_image(dst, output, quality, icc)

    def convert(self, jobs: list[Job], run: Run) -> None:
        _convert_images(self, jobs, run)


IMAGES = ImageSource()


def convert_folder(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    model: Translator | str | os.PathLike[str] | LoadedModel,
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
    # Loaded even when every output exists: a wrong model or option is an error, not a no-op.
    translator = model if isinstance(model, Translator) else Translator.load(model)
    return run_conversion(Path(src), Path(dst), translator, options, (IMAGES,))


def _convert_images(source: ImageSource, jobs: list[Job], run: Run) -> None:
    """The image pipeline: decode ahead, batch same sizes, translate, encode behind."""
    options, summary, budget = run.options, run.summary, run.budget
    batch_size = run.translator.batch_size
    workers = min(8, os.cpu_count() or 1) if options.workers is None else max(1, options.workers)
    desc = "convert" if run.ranks.world_size == 1 else f"convert (rank {run.ranks.rank})"
    with (
        ThreadPoolExecutor(workers, thread_name_prefix="decode") as readers,
        ThreadPoolExecutor(workers, thread_name_prefix="encode") as writers,
        tqdm(total=len(jobs), unit="img", desc=desc, disable=not options.progress) as bar,
    ):

        def fail(path: Path, reason: str) -> None:
            run.fail(path, reason)
            bar.update(1)

        spec = run.translator.spec
        classes = spec.in_channels if spec.input_kind == "labels" else None

        def read(job: Job) -> _Decoded | tuple[Path, str]:
            return source.read(job, options, classes)

        writes: deque[tuple[_Decoded, Future[None]]] = deque()
        decoded = _ordered_map(readers, read, jobs, ahead=max(2 * batch_size, 2 * workers))
        for batch in _same_size_batches(decoded, fail, batch_size, pending=4 * batch_size):
            height, width = batch[0].image.shape[:2]
            # Refused before it runs: the OS would kill the whole run, not fail one file.
            too_large = budget.refuse(height, width)
            if too_large is not None:
                for item in batch:
                    fail(item.job.src, too_large)
                continue
            fits = budget.images_per_pass(height, width)
            for part in (batch[i : i + fits] for i in range(0, len(batch), fits)):
                for item, out in _translate(run.translator, part, fail):
                    writes.append((item, writers.submit(source.write, item, out, options)))
            while len(writes) > 2 * batch_size + workers:
                _finish(writes.popleft(), summary, bar, fail)
        while writes:
            _finish(writes.popleft(), summary, bar, fail)


def _translate(
    model: Translator, batch: list[_Decoded], fail: Callable[[Path, str], None]
) -> list[tuple[_Decoded, np.ndarray]]:
    """(item, output) for a same-size batch; a failure fails the whole batch."""
    try:
        outputs = model.translate_batch([item.image for item in batch])
    except Exception as exc:  # e.g. a device error: report, go on
        for item in batch:
            fail(item.job.src, f"translation failed ({exc})")
        return []
    finally:
        for item in batch:
            item.image = None
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


def _finish(
    write: tuple[_Decoded, Future[None]],
    summary: ConvertSummary,
    bar: tqdm,
    fail: Callable[[Path, str], None],
) -> None:
    item, future = write
    job = item.job
    try:
        future.result()
    except Exception as exc:  # disk full, permissions: the input is reported as not converted
        fail(job.src, f"cannot write {job.dst} ({error_reason(exc, job.dst)})")
        return
    summary.converted += 1
    if item.info.frames > 1:
        summary.first_frame_only.append((job.src, item.info.frames))
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
    decoded: Iterable[_Decoded | tuple[Path, str]],
    fail: Callable[[Path, str], None],
    batch_size: int,
    pending: int,
) -> Iterator[list[_Decoded]]:
    """Group decoded jobs by image shape; read failures go to ``fail`` on the way.

    A bucket is released when full, or (the fullest one) when ``pending`` images wait.
    """
    buckets: dict[tuple[int, ...], list[_Decoded]] = defaultdict(list)
    waiting = 0
    for item in decoded:
        if not isinstance(item, _Decoded):
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
