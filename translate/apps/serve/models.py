"""The models a server may run, loaded once, and the gate that bounds work on them.

Every model named on the command line is loaded once, at start, onto the one device the
server uses; translators for each direction and tile size share that copy. Translations run
in worker threads behind :class:`Gate`: ``workers`` at a time, ``queue`` more waiting, and
anything beyond that is refused with :class:`Busy` (HTTP 503) instead of piling up in memory.
"""

from __future__ import annotations

import asyncio
import colorsys
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from translate.data.images import list_images
from translate.inference.memory import MEMORY_SHARE, MemoryBudget, bytes_per_pixel, free_memory
from translate.inference.translator import Translator
from translate.models.loading import load_model
from translate.models.model_file import LoadedModel

T = TypeVar("T")
MIN_TILE = 32
# Translators kept for reuse: requests choose the tile size, so keep the recent ones only.
TRANSLATORS_KEPT = 16
# The sample tiles are demo's inputs. They live in datasets/samples of a source checkout (and
# so of an editable install); a wheel ships only the package, and the page then offers none.
SAMPLES = Path(__file__).resolve().parents[3] / "datasets" / "samples"
EXAMPLES = {"demo": SAMPLES}
# What a bundled model does, which its metadata (trainer, dataset folder) does not say.
DESCRIPTIONS = {
    "demo": "satellite tiles to shaded-relief maps",
    "demo-sr": "x4 super-resolution of photos",
}


class Busy(Exception):
    """Every worker is busy and the waiting line is full."""


class Gate:
    """Run blocking functions in threads: ``workers`` at once, ``queue`` more waiting."""

    def __init__(self, workers: int = 1, queue: int = 8) -> None:
        if workers < 1 or queue < 0:
            raise ValueError(f"workers must be >= 1 and queue >= 0, got {workers}, {queue}")
        self.capacity = workers + queue
        self._slots = asyncio.Semaphore(workers)
        self.pending = 0  # running + waiting; changed only on the event loop's thread

    @property
    def full(self) -> bool:
        return self.pending >= self.capacity

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread once a worker is free; :class:`Busy` if full."""
        if self.full:
            raise Busy(f"busy: {self.pending} translations running or waiting; try again")
        self.pending += 1
        try:
            async with self._slots:
                return await run_in_threadpool(fn, *args)
        finally:
            self.pending -= 1


@dataclass
class ModelInfo:
    name: str  # what requests name it by: the source it was given at start
    label: str  # what the page shows: a file's or run folder's name, not its path
    about: str
    directions: list[str]
    in_channels: int
    out_channels: int
    examples: list[str]
    input_kind: str  # "image", or "labels": maps of class ids, which the page paints
    noise_dim: int  # > 0: a noise input, which a request's seed draws
    classes: list[dict[str, Any]] | None  # a label model's: each class's name and colour


def class_list(classes: int, labels: dict[str, Any]) -> list[dict[str, Any]]:
    """Each class's name and RGB colour for the paint tab: those the model file records
    (``training["labels"]``: ``names``, ``colors``, as a config's ``data.labels``), else
    "class i" and hues spread by the golden angle, so neighbouring ids look apart. A recorded
    list of another length than the classes is not the model's and is not used."""
    names = labels.get("names") or []
    if len(names) != classes:
        names = [f"class {i}" for i in range(classes)]
    colors = labels.get("colors") or []
    if len(colors) != classes:
        colors = [
            [round(255 * c) for c in colorsys.hsv_to_rgb((i * 0.618034) % 1, 0.65, 0.9)]
            for i in range(classes)
        ]
    return [{"name": n, "color": list(c)} for n, c in zip(names, colors, strict=True)]


def describe(name: str, training: dict[str, Any]) -> str:
    """One line on what a model does and how it was trained, from its file's metadata."""
    parts = [DESCRIPTIONS.get(name, "")]
    if "model" in training:
        trained = f"{training['model']}"
        if training.get("dataset"):
            trained += f" trained on {Path(training['dataset']).name}"
        if training.get("steps"):
            trained += f" for {training['steps']:,} steps"
        best = training.get("best_val") or {}
        if "val_L1" in best:
            trained += f", validation L1 {best['val_L1']:.4f}"
        parts.append(trained)
    elif training.get("source"):
        parts.append(str(training["source"]))
    return "; ".join(part for part in parts if part)


def labels(sources: Sequence[str]) -> dict[str, str]:
    """Each source's last path part; sources whose parts coincide keep their whole text."""
    short = {src: Path(src).name or src for src in sources}
    counts = Counter(short.values())
    return {src: label if counts[label] == 1 else src for src, label in short.items()}


class Models:
    """The models named at start, by the name they were given (``demo``, a path, ...)."""

    def __init__(
        self,
        sources: Sequence[str],
        device: str = "auto",
        backend: str = "torch",
        **options: Any,
    ) -> None:
        """``options``: other ``TranslatorOptions`` fields every translator takes (precision,
        compile, calibrate, min_psnr); a request's own options come on top."""
        if not sources:
            raise ValueError("name at least one model to serve (e.g. demo)")
        self.device, self.backend, self.options = device, backend, options
        # Loaded on the CPU, moved to the device once by the first translator.
        self.files: dict[str, LoadedModel] = {src: load_model(src) for src in sources}
        self._translators: OrderedDict[tuple[Any, ...], Translator] = OrderedDict()
        # Built now, so a bad --device fails at start and not on the first request; each
        # generator's memory per pixel is measured now too, while no request runs.
        self._bytes_per_pixel = {
            (name, direction): bytes_per_pixel(self.translator(name, direction, None))
            for name, model in self.files.items()
            for direction in model.generators
        }

    def info(self) -> list[ModelInfo]:
        result = []
        shown = labels(list(self.files))
        for name, model in self.files.items():
            spec = next(iter(model.specs.values()))
            generator = next(iter(model.generators.values()))
            result.append(
                ModelInfo(
                    name,
                    shown[name],
                    describe(name, model.training),
                    list(model.generators),
                    spec.in_channels,
                    spec.out_channels,
                    list(self.examples(name)),
                    spec.input_kind,
                    int(getattr(generator, "noise_dim", 0) or 0),
                    class_list(spec.in_channels, model.training.get("labels") or {})
                    if spec.input_kind == "labels"
                    else None,
                )
            )
        return result

    def examples(self, name: str) -> dict[str, Path]:
        """File name -> path of the sample inputs offered for a served model (often none)."""
        folder = EXAMPLES.get(name)
        if name not in self.files or folder is None or not folder.is_dir():
            return {}
        return {path.name: path for path in list_images(folder)}

    def budget(
        self, name: str, direction: str, tile: int | None = None, **options: Any
    ) -> MemoryBudget:
        """The translator with what one pass may take now: the converter's estimate against
        the memory free at this moment, so a huge upload is refused, not killed by the OS.
        ``options``: other request parameters (``TranslatorOptions`` fields)."""
        translator = self.translator(name, direction, tile, **options)
        per_pixel = self._bytes_per_pixel[name, direction]
        free = MEMORY_SHARE * free_memory(translator.device)
        return MemoryBudget(translator, per_pixel, max(1, int(free / per_pixel)))

    def translator(
        self, name: str, direction: str, tile: int | None = None, **options: Any
    ) -> Translator:
        """The translator for a served model (``options``: other ``TranslatorOptions``
        fields a request gives); ``ValueError`` (one line) for anything else."""
        if name not in self.files:
            raise ValueError(f"model {name!r} is not served here; served: {', '.join(self.files)}")
        if tile is not None and tile < MIN_TILE:
            raise ValueError(f"tile must be at least {MIN_TILE} pixels, got {tile}")
        key = (name, direction, tile, *sorted(options.items()))
        if key not in self._translators:
            self._translators[key] = Translator(
                self.files[name],
                device=self.device,
                backend=self.backend,
                direction=direction,
                tile=tile,
                batch_size=1,
                **{**self.options, **options},
            )
            if len(self._translators) > TRANSLATORS_KEPT:
                self._translators.popitem(last=False)
        self._translators.move_to_end(key)
        return self._translators[key]
