"""Conversion on Ray Data (the ``ray`` extra): a pool of actors, one model each.

:func:`convert_on_ray` is :func:`~translate.conversion.runner.run_conversion` with the files'
work spread over a Ray cluster: the driver plans once (the walk, a ``--files-from`` list
or a glob), claims the manifest and skips the outputs that exist, exactly as the local
path does; the jobs left become a Ray ``Dataset`` of (input, output) paths, and
``map_batches`` hands batches of them to an actor pool. Each actor loads the model once and
runs the local path's per-file work on its batch (``Source.convert``: read, translate, write
atomically), so outputs, names and failures are the local path's. Ray's streaming executor
keeps only a few batches in flight (its backpressure); a killed actor's batch is retried
on a restarted one, and outputs written before are kept, so nothing is lost and a rerun
skips them.

:func:`translate_dataset` is the in-memory form: a ``Dataset`` of images in, one of their
translations out.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from translate.conversion import manifest
from translate.conversion.convert import IMAGES
from translate.conversion.runner import ConvertSummary, Job, Run, Source, prepare_conversion
from translate.core.extras import needs_extra
from translate.core.process import Ranks
from translate.inference.memory import MemoryBudget
from translate.inference.options import ConvertOptions, TranslatorOptions
from translate.inference.translator import Translator
from translate.models.model_file import LoadedModel

if TYPE_CHECKING:
    import ray.data

ModelArg = str | os.PathLike[str] | LoadedModel
# Jobs per batch an actor converts at a time: big enough to fill the local pipeline's
# decode/translate/encode overlap, small enough that a killed actor redoes little.
JOBS_PER_BATCH = 16


def _ray() -> Any:
    with needs_extra("ray", "--ray (conversion on Ray Data)"):
        import ray
        import ray.data  # noqa: F401  (the submodule convert_on_ray uses)
    return ray


def connect(address: str | None = None) -> None:
    """Join the Ray cluster at ``address`` (``auto``: the one this machine belongs to), or
    start a local instance (None, ``local``); nothing when this process already joined one."""
    ray = _ray()
    if ray.is_initialized():
        return
    ray.init(
        address=address or "local",
        log_to_driver=False,
        include_dashboard=False,
        logging_level=logging.WARNING,
    )
    # The driver's one bar counts files; Ray's own bars and per-dataset log lines would
    # interleave with it.
    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def _check_listening(address: str) -> None:
    """Refuse in seconds a ``host:port`` (or ``ray://host:port``) where nothing listens:
    ``ray.init`` retries a dead address for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not port.isdigit():
        return  # not host:port: Ray reads it (and names what is wrong) itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise ValueError(
            f"Ray cluster at {address}: nothing answers ({exc.strerror or exc}); start it "
            "(ray start --head) or give its address"
        ) from None


def _actor_resources(actors: int | None, gpus_per_actor: float | None) -> tuple[int, float]:
    """How many actors, and GPUs each: one actor per GPU of the cluster, else one per two
    CPUs (the other CPU decodes and encodes)."""
    resources = _ray().cluster_resources()
    gpus = float(resources.get("GPU", 0))
    if gpus_per_actor is None:
        gpus_per_actor = 1.0 if gpus >= 1 else 0.0
    if actors is None:
        actors = int(gpus // gpus_per_actor) if gpus_per_actor else int(resources["CPU"]) // 2
    if actors < 1:
        raise ValueError(f"--actors must be at least 1, got {actors}")
    return actors, gpus_per_actor


class _ConvertWorker:
    """An actor of :func:`convert_on_ray`: one translator, the local path's per-file work."""

    def __init__(
        self,
        model: ModelArg,
        translating: TranslatorOptions,
        options: ConvertOptions,
        record: dict[str, Any],
        file_record: bool,
        sources: Sequence[Source],
        arch: str | None,
        norm: str | None,
    ) -> None:
        self.translator = Translator.load(model, translating, arch=arch, norm=norm)
        mine = manifest.describe(self.translator, options)
        if mine != record:  # e.g. `auto` resolved otherwise on a worker's device
            differ = ", ".join(manifest.differences(record, mine))
            raise ValueError(
                f"a Ray worker translates otherwise than the driver planned ({differ}); give "
                "--device and --precision explicitly"
            )
        self.options = options
        self.budget = MemoryBudget.for_translator(self.translator, options.max_pixels)
        self.file_record = record if file_record else None
        self.sources = {source.noun: source for source in sources}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        summary = ConvertSummary()
        run = Run(self.translator, self.options, self.budget, Ranks(), summary, self.file_record)
        for noun, source in self.sources.items():
            jobs = [
                Job(Path(src), Path(dst), str(name))
                for src, dst, name, kind in zip(
                    batch["src"], batch["dst"], batch["name"], batch["source"], strict=True
                )
                if kind == noun
            ]
            if jobs:
                source.convert(jobs, run)
        failed = {str(path): reason for path, reason in summary.failed}
        frames = {str(path): count for path, count in summary.first_frame_only}
        srcs = [str(src) for src in batch["src"]]
        return {
            "src": srcs,
            "reason": [failed.get(src, "") for src in srcs],
            "frames": [frames.get(src, 1) for src in srcs],
        }


def convert_on_ray(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    model: ModelArg,
    translating: TranslatorOptions | None = None,
    options: ConvertOptions | None = None,
    *,
    sources: Sequence[Source] = (IMAGES,),
    inputs: Sequence[Path] | None = None,
    address: str | None = None,
    actors: int | None = None,
    gpus_per_actor: float | None = None,
    jobs_per_batch: int = JOBS_PER_BATCH,
    arch: str | None = None,
    norm: str | None = None,
) -> ConvertSummary:
    """Convert ``src`` into ``dst`` as :func:`~translate.conversion.convert.convert_folder`
    does (same outputs, manifest, skips and summary), on a pool of Ray actors.

    ``model`` is what :meth:`Translator.load` takes, loaded by the driver (for the manifest)
    and by each actor; ``inputs`` as :func:`~translate.conversion.runner.listed_inputs`
    returns. ``address``: the cluster to join (None: a local instance, unless this process
    joined one already). ``actors``: one per GPU, else one per two CPUs; ``gpus_per_actor``:
    1 where the cluster has GPUs.
    """
    if address not in (None, "local", "auto"):
        _check_listening(address)  # before the model loads and the manifest is claimed
    src, dst = Path(src), Path(dst)
    translating = translating or TranslatorOptions()
    options = options or ConvertOptions()
    translator = Translator.load(model, translating, arch=arch, norm=norm)
    prepared = prepare_conversion(src, dst, translator, options, sources, inputs)
    summary = prepared.summary
    rows = [
        {"src": str(job.src), "dst": str(job.dst), "name": job.name, "source": noun}
        for noun, jobs in prepared.todo.items()
        for job in jobs
    ]
    if not rows:
        return summary
    ray = _ray()
    connect(address)
    actors, gpus = _actor_resources(actors, gpus_per_actor)
    worker_options = replace(options, progress=False)  # the driver's bar counts for all
    # Every actor gets work even on a short list; a batch is one block.
    jobs_per_batch = max(1, min(jobs_per_batch, math.ceil(len(rows) / actors)))
    ds = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / jobs_per_batch))
    done = ds.map_batches(
        _ConvertWorker,
        fn_constructor_kwargs={
            "model": model,
            "translating": translating,
            "options": worker_options,
            "record": prepared.record,
            "file_record": prepared.one_file,
            "sources": tuple(sources),
            "arch": arch,
            "norm": norm,
        },
        batch_size=jobs_per_batch,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=gpus,
        num_cpus=1,
    )
    bar = tqdm(total=len(rows), unit="file", desc="convert (ray)", disable=not options.progress)
    with bar:
        for batch in _results(done):
            results = zip(batch["src"], batch["reason"], batch["frames"], strict=True)
            for path, reason, frames in results:
                if reason:
                    summary.failed.append((Path(path), str(reason)))
                    continue
                summary.converted += 1
                if frames > 1:
                    summary.first_frame_only.append((Path(path), int(frames)))
            bar.update(len(batch["src"]))
    return summary


def _results(done: ray.data.Dataset) -> Any:
    """The result batches as they come; a worker's one-line error (a bad option, a file
    the model cannot load) is raised as itself, not wrapped in Ray's traceback."""
    ray = _ray()
    try:
        yield from done.iter_batches(batch_size=None, batch_format="numpy")
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, (ValueError, FileNotFoundError, TypeError)):
            raise cause from None
        raise


class _TranslateWorker:
    """An actor of :func:`translate_dataset`: one translator over batches of images."""

    def __init__(
        self, model: ModelArg, translating: TranslatorOptions, column: str, arch: str | None,
        norm: str | None,
    ) -> None:  # fmt: skip
        self.translator = Translator.load(model, translating, arch=arch, norm=norm)
        self.column = column

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        images = list(batch[self.column])
        batch = dict(batch)
        batch[self.column] = self.translator.translate_batch(images)
        return batch


def translate_dataset(
    ds: ray.data.Dataset,
    model: ModelArg,
    translating: TranslatorOptions | None = None,
    *,
    column: str = "image",
    actors: int | None = None,
    gpus_per_actor: float | None = None,
    batch_size: int = JOBS_PER_BATCH,
    arch: str | None = None,
    norm: str | None = None,
) -> ray.data.Dataset:
    """``ds`` (rows with an image array in ``column``, as ``ray.data.read_images`` gives)
    with each image replaced by its translation; the other columns pass through.

    Lazy, like any ``Dataset``: the actor pool (``actors``, ``gpus_per_actor`` as for
    :func:`convert_on_ray`; Ray must be initialised) runs when the result is consumed.
    """
    ray = _ray()
    actors, gpus = _actor_resources(actors, gpus_per_actor)
    return ds.map_batches(
        _TranslateWorker,
        fn_constructor_args=(model, translating or TranslatorOptions(), column, arch, norm),
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=gpus,
        num_cpus=1,
    )
