"""Convert an image or a folder of images with a translator, mirroring the folder layout.

Decoding runs in a thread pool ahead of the model, encoding in another behind it (PIL and
zlib release the GIL while they work), so the three overlap; decoded images wait in
per-size buckets so that same-size images share a batch. On the CPU, a translator that
threads may share (on any backend) translates one image per torch thread, side by side,
each on one.
Each file's header is checked against the memory budget before its pixels are decoded,
and the read-ahead is bounded by the decoded bytes as well as by count. An image cut into
tiles (``--tile``) is translated one row of tiles at a time and its finished rows are
written as they come (PNG), or gathered in a uint8/uint16 canvas for formats written
whole, so no whole-image float buffer exists; the progress bar advances per tile.
Every output is written atomically and an existing output is skipped unless ``overwrite``,
so an interrupted run is resumed by running it again.
"""

from __future__ import annotations

import os
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from translate.conversion.runner import ConvertSummary, Job, Run, run_conversion, shard
from translate.conversion.runner import writes_one_file as writes_one_file_of
from translate.data.images import (
    DEEP_SUFFIXES,
    ImageInfo,
    is_image_path,
    png_rows,
    read_header,
    read_image_with_info,
    read_label_map,
    to_8bit,
    write_image,
    writes_rows,
)
from translate.inference.formats import OUTPUT_FORMATS, SAME, canonical, for_suffix, format_choices
from translate.inference.options import ConvertOptions, ImageOptions
from translate.inference.translator import Translator
from translate.models.model_file import LoadedModel

__all__ = [
    "ConvertOptions",
    "ConvertSummary",
    "IMAGES",
    "convert_folder",
    "shard",
]

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Decoded:
    """A job whose input is read: the pixels (until translated) and what the file holds."""

    job: Job
    image: np.ndarray | None
    info: ImageInfo
    progress: float = 0.0  # the share of the bar's step credited so far (tiles)


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
    """Image files as a conversion source (:mod:`translate.conversion.runner`); each file's
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
        self,
        job: Job,
        options: ImageOptions,
        classes: int | None = None,
        refuse: Callable[[Job, int, int], str | None] | None = None,
    ) -> _Decoded | tuple[Path, str]:
        """The job's pixels, resized and cropped as asked, or (path, why) when unreadable.
        ``classes``: the file is a label map of ids below it (a labels model), read as
        stored and never resized (no interpolation invents ids). ``refuse(job, height,
        width)``: why the size to translate (from the file's header, after resizing and
        cropping) is too large, checked before any pixel is decoded."""
        try:
            if refuse is not None:
                header = read_header(job.src)
                height, width = _translated_size(
                    header.height, header.width, options.resize_shorter, options.center_crop
                )
                too_large = refuse(job, height, width)
                if too_large is not None:
                    return job.src, too_large
            if classes is None:
                # The file's own channels and depth, as Translator takes a PIL image: gray
                # stays gray, 16 bits stay 16 bits.
                image, info = read_image_with_info(job.src, None, alpha="keep", keep_16bit=True)
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
        if dst.suffix.lower() not in DEEP_SUFFIXES:  # 8 bits a sample is all it holds
            output = to_8bit(output)
        quality = options.quality if fmt and fmt.quality else None
        icc = decoded.info.icc_profile if fmt and fmt.icc else None
        write_image(dst, output, quality, icc, options.png_compression)

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
    # One image per torch thread, each pass on one thread: one pass on two threads waits at
    # every layer for the slower one (idle on 2 cores, with level-1 PNGs beside it, the
    # demo's 192 PNGs went from 51.7 to 68.1 images/s on torch). The onnxruntime and
    # openvino runners follow each lane's torch thread count as the torch module does
    # (Translator.reentrant). Other translators run on this thread, on every thread.
    threads = torch.get_num_threads()
    lanes = threads if run.translator.reentrant else 1
    with (
        ThreadPoolExecutor(workers, thread_name_prefix="decode") as readers,
        ThreadPoolExecutor(workers, thread_name_prefix="encode") as writers,
        _single_threaded_pool(lanes, threads) as translators,
        tqdm(
            total=len(jobs), unit="img", desc=desc, disable=not options.progress, bar_format=_BAR
        ) as bar,
    ):

        def fail(path: Path, reason: str, credited: float = 0.0) -> None:
            run.fail(path, reason)
            bar.update(1 - credited)

        spec = run.translator.spec
        classes = spec.in_channels if spec.input_kind == "labels" else None

        def refuse(job: Job, height: int, width: int) -> str | None:
            return _refusal(run, job, height, width)

        def read(job: Job) -> _Decoded | tuple[Path, str]:
            return source.read(job, options, classes, refuse)

        writes: deque[tuple[_Decoded, Future[None]]] = deque()
        translating: deque[tuple[list[_Decoded], Future[list[np.ndarray]]]] = deque()

        def written() -> None:
            """The oldest translation's outputs handed to the encoders, in input order."""
            part, future = translating.popleft()
            for item, out in _translated(part, future, fail):
                writes.append((item, writers.submit(source.write, item, out, options)))

        # Decoded images wait for the model: a quarter of the pass's budget of them at most.
        decoded = _ordered_map(
            readers, read, jobs, ahead=max(2 * batch_size, 2 * workers, 2 * lanes),
            weigh=_decoded_bytes, limit=budget.limit / 4,
        )  # fmt: skip
        for batch in _same_size_batches(decoded, fail, batch_size, pending=4 * batch_size):
            height, width = batch[0].image.shape[:2]
            if run.translator.streams(height, width):
                while translating:  # the pool's passes end before a tiled one starts
                    written()
                for item in batch:
                    tiled = _translate_rows(source, item, run, bar, writers, fail)
                    if tiled is not None:
                        writes.append((item, tiled))
            else:
                # Refused before it runs: the OS would kill the whole run, not fail one file.
                too_large = _refusal(run, batch[0].job, height, width)
                if too_large is not None:
                    for item in batch:
                        fail(item.job.src, too_large)
                    continue
                fits = budget.images_per_pass(height, width)
                # Passes side by side share the budget: each takes its share of it, and
                # images that fit only fewer at a time run here on every thread.
                pool = translators if translators is not None and fits >= lanes else None
                share = fits // lanes if pool is not None else fits
                for part in (batch[i : i + share] for i in range(0, len(batch), share)):
                    while translating and (pool is None or len(translating) >= lanes):
                        written()
                    translating.append((part, _submit(pool, run.translator, part)))
            while len(writes) > 2 * batch_size + workers:
                _finish(writes.popleft(), summary, bar, fail)
        while translating:
            written()
        while writes:
            _finish(writes.popleft(), summary, bar, fail)


@contextmanager
def _single_threaded_pool(lanes: int, threads: int) -> Iterator[ThreadPoolExecutor | None]:
    """``lanes`` translating threads of one torch thread each (None for one lane: the
    caller's thread translates, on all of torch's threads). torch's thread count is per
    thread once set, but a new thread starts at the count set last, so ``threads`` is set
    again on the way out for threads started later."""
    if lanes == 1:
        yield None
        return
    try:
        with ThreadPoolExecutor(
            lanes, thread_name_prefix="translate", initializer=torch.set_num_threads, initargs=(1,)
        ) as pool:
            yield pool
    finally:
        torch.set_num_threads(threads)


# tqdm's default bar, with the count of images to one decimal: tiles advance it by fractions.
_BAR = "{l_bar}{bar}| {n:.1f}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


def _refusal(run: Run, job: Job, height: int, width: int) -> str | None:
    """Why a ``height`` x ``width`` image is too large to translate into ``job.dst``: in
    one pass or, with tiles, a band of tile rows at a time (``translate_rows``, images
    only), its rows written as they come (PNG) or gathered in a canvas; a refusal's --tile
    hint counts the same."""
    bands = run.translator.spec.input_kind == "image"
    canvas = bands and not writes_rows(job.dst)
    return run.budget.refuse(height, width, band=bands, canvas=canvas)


def _decoded_bytes(job: Job) -> int:
    """What ``job``'s decoded pixels take, from its header (0 when unreadable: the read
    says why)."""
    try:
        return read_header(job.src).nbytes
    except ValueError:
        return 0


def _translate_rows(
    source: ImageSource,
    item: _Decoded,
    run: Run,
    bar: tqdm,
    writers: ThreadPoolExecutor,
    fail: Callable[[Path, str, float], None],
) -> Future[None] | None:
    """Translate one image in tiles (``Translator.translate_rows``), advancing the bar per
    tile: a PNG's rows are compressed onto the file as they come; another format's gather
    in a canvas of the output's dtype, then written by ``writers``. The write's future, or
    None when the image failed (recorded)."""
    job, image, options = item.job, item.image, run.options
    item.image = None  # its header passed the budget (ImageSource.read)
    scale = run.translator.spec.scale
    height, width = image.shape[0] * scale, image.shape[1] * scale
    fmt = for_suffix(job.dst.suffix)
    icc = item.info.icc_profile if fmt and fmt.icc else None
    filled = 0
    canvas: np.ndarray | None = None

    def on_tile(done: int, total: int) -> None:
        bar.update(done / total - item.progress)
        item.progress = done / total

    try:
        with ExitStack() as stack:
            row_writer: Callable[[np.ndarray], None] | None = None

            def write(rows: np.ndarray) -> None:
                nonlocal row_writer, canvas, filled
                if not writes_rows(job.dst):
                    if canvas is None:
                        canvas = np.empty((height, *rows.shape[1:]), rows.dtype)
                    canvas[filled : filled + len(rows)] = rows
                    filled += len(rows)
                    return
                if row_writer is None:
                    channels = rows.shape[2] if rows.ndim == 3 else 1
                    rows_png = png_rows(
                        job.dst, height, width, channels, rows.dtype, icc, options.png_compression
                    )
                    row_writer = stack.enter_context(rows_png)
                row_writer(rows)

            run.translator.translate_rows(image, write, on_tile, job.name)
    except Exception as exc:  # one file's failure is reported, never fatal
        why = error_reason(exc, job.dst)
        if isinstance(exc, OSError):  # disk full, permissions
            fail(job.src, f"cannot write {job.dst} ({why})", item.progress)
        else:
            fail(job.src, f"translation failed ({why})", item.progress)
        return None
    if canvas is None:
        done: Future[None] = Future()
        done.set_result(None)
        return done
    return writers.submit(source.write, item, canvas, options)


def _submit(
    pool: ThreadPoolExecutor | None, model: Translator, part: list[_Decoded]
) -> Future[list[np.ndarray]]:
    """The translation of a same-size ``part`` by ``pool``, or now on this thread (None)."""
    if pool is not None:
        return pool.submit(_translate, model, part)
    done: Future[list[np.ndarray]] = Future()
    try:
        done.set_result(_translate(model, part))
    except Exception as exc:  # raised where the result is read (_translated)
        done.set_exception(exc)
    return done


def _translate(model: Translator, part: list[_Decoded]) -> list[np.ndarray]:
    """The outputs of a same-size ``part``; its decoded pixels are let go."""
    try:
        return model.translate_batch(
            [item.image for item in part], [item.job.name for item in part]
        )
    finally:
        for item in part:
            item.image = None


def _translated(
    part: list[_Decoded], future: Future[list[np.ndarray]], fail: Callable[[Path, str], None]
) -> list[tuple[_Decoded, np.ndarray]]:
    """(item, output) for a translated ``part``; a failure fails the whole part."""
    try:
        outputs = future.result()
    except Exception as exc:  # e.g. a device error: report, go on
        for item in part:
            fail(item.job.src, f"translation failed ({exc})")
        return []
    return list(zip(part, outputs, strict=True))


def _resize_and_crop(image: np.ndarray, shorter: int | None, crop: int | None) -> np.ndarray:
    """torchvision's ``Resize(shorter)`` then ``CenterCrop(crop)`` on the PIL image."""
    if shorter is not None:
        h, w = _translated_size(*image.shape[:2], shorter, None)
        size = (w, h)
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


def _translated_size(
    height: int, width: int, shorter: int | None, crop: int | None
) -> tuple[int, int]:
    """The (height, width) :func:`_resize_and_crop` makes of a ``height`` x ``width`` image
    (a crop larger than the image is refused there)."""
    if shorter is not None:
        # torchvision: the short side becomes ``shorter``, the long one is truncated.
        if width <= height:
            height, width = int(shorter * height / width), shorter
        else:
            height, width = shorter, int(shorter * width / height)
    if crop is not None and crop <= min(height, width):
        return crop, crop
    return height, width


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
        fail(job.src, f"cannot write {job.dst} ({error_reason(exc, job.dst)})", item.progress)
        return
    summary.converted += 1
    if item.info.frames > 1:
        summary.first_frame_only.append((job.src, item.info.frames))
    bar.update(1 - item.progress)


def _ordered_map(
    pool: ThreadPoolExecutor,
    fn: Callable[[T], R],
    items: Iterable[T],
    ahead: int,
    weigh: Callable[[T], float] | None = None,
    limit: float = float("inf"),
) -> Iterator[R]:
    """``map`` on a pool that keeps at most ``ahead`` results in flight, in input order,
    and (with ``weigh``, each item's cost) no more than ``limit`` of cost besides the
    first."""
    it = iter(items)
    futures: deque[tuple[Future[R], float]] = deque()
    held = 0.0
    nxt = next(it, None)
    while nxt is not None or futures:
        while nxt is not None and len(futures) < ahead:
            cost = weigh(nxt) if weigh is not None else 0.0
            if futures and held + cost > limit:
                break
            futures.append((pool.submit(fn, nxt), cost))
            held += cost
            nxt = next(it, None)
        future, cost = futures.popleft()
        held -= cost
        yield future.result()


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
