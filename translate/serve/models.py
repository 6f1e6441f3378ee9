"""The models a server may run, loaded once, and the gate that bounds work on them.

Every model named on the command line is loaded once, at start, onto the one device the
server uses; translators for each direction and tile size share that copy. Translations run
in worker threads behind :class:`Gate`: ``workers`` at a time, ``queue`` more waiting, and
anything beyond that is refused with :class:`Busy` (HTTP 503) instead of piling up in memory.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from translate.inference.loading import load_model
from translate.inference.memory import MEMORY_SHARE, MemoryBudget, bytes_per_pixel, free_memory
from translate.inference.translator import Translator
from translate.model_file import GeneratorFile

T = TypeVar("T")
# Pixels shared by neighbouring tiles (at most a quarter of the tile), as convert's --overlap.
TILE_OVERLAP = 32
MIN_TILE = 32
# Translators kept for reuse: requests choose the tile size, so keep the recent ones only.
TRANSLATORS_KEPT = 16


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
    name: str
    directions: list[str]
    in_channels: int
    out_channels: int


class Models:
    """The models named at start, by the name they were given (``demo``, a path, ...)."""

    def __init__(self, sources: Sequence[str], device: str = "auto") -> None:
        if not sources:
            raise ValueError("name at least one model to serve (e.g. demo)")
        self.device = device
        # Loaded on the CPU, moved to the device once by the first translator.
        self.files: dict[str, GeneratorFile] = {src: load_model(src) for src in sources}
        self._translators: OrderedDict[tuple[str, str, int | None], Translator] = OrderedDict()
        # Built now, so a bad --device fails at start and not on the first request; each
        # generator's memory per pixel is measured now too, while no request runs.
        self._bytes_per_pixel = {
            (name, direction): bytes_per_pixel(self.translator(name, direction, None))
            for name, model in self.files.items()
            for direction in model.generators
        }

    def info(self) -> list[ModelInfo]:
        result = []
        for name, model in self.files.items():
            spec = next(iter(model.specs.values()))
            result.append(
                ModelInfo(name, list(model.generators), spec.in_channels, spec.out_channels)
            )
        return result

    def budget(self, name: str, direction: str, tile: int | None) -> MemoryBudget:
        """The translator with what one pass may take now: the converter's estimate against
        the memory free at this moment, so a huge upload is refused, not killed by the OS."""
        translator = self.translator(name, direction, tile)
        per_pixel = self._bytes_per_pixel[name, direction]
        free = MEMORY_SHARE * free_memory(translator.device)
        return MemoryBudget(translator, per_pixel, max(1, int(free / per_pixel)))

    def translator(self, name: str, direction: str, tile: int | None) -> Translator:
        """The translator for a served model; ``ValueError`` (one line) for anything else."""
        if name not in self.files:
            raise ValueError(f"model {name!r} is not served here; served: {', '.join(self.files)}")
        if tile is not None and tile < MIN_TILE:
            raise ValueError(f"tile must be at least {MIN_TILE} pixels, got {tile}")
        key = (name, direction, tile)
        if key not in self._translators:
            self._translators[key] = Translator(
                self.files[name],
                device=self.device,
                direction=direction,
                tile=tile,
                overlap=min(TILE_OVERLAP, tile // 4) if tile else TILE_OVERLAP,
                batch_size=1,
            )
            if len(self._translators) > TRANSLATORS_KEPT:
                self._translators.popitem(last=False)
        self._translators.move_to_end(key)
        return self._translators[key]
