"""The run directory: where each file of a training run lives, in one place.

``translate train`` writes it (the engine, its checkpoints and its report); loading reads
its generator files and checkpoints as a MODEL; ``translate serve`` and ``translate card``
read its config, metrics and samples. Every one of them asks :class:`RunDir` for a path, so
the layout is spelled out here only::

    config.yaml                      the resolved config
    metrics.jsonl                    one JSON object per log step / evaluation
    checkpoints/state_<step>.pt      full training states (the newest ``log.keep``)
    generator_latest.safetensors     generator files, written at each evaluation
    generator_best.safetensors       ... and when the trainer's best metric improves
    generators/generator_<step>.safetensors   snapshots (``log.snapshot_every``)
    samples/epoch<EEE>_step<SSSSSSS>.png      sample grids
    losses.png, index.html, tensorboard/      the report

Paths only: nothing here reads or writes a file's contents (no torch, no YAML).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

STATE_NAME = re.compile(r"state_(\d+)\.pt")
SAMPLE_NAME = re.compile(r"epoch(\d+)_step(\d+)\.png")


class Sample(NamedTuple):
    """A sample grid's file and the epoch and step its name records."""

    epoch: int
    step: int
    path: Path


class RunDir:
    """The paths of the run directory ``path`` (which need not exist yet)."""

    CONFIG = "config.yaml"
    METRICS = "metrics.jsonl"
    LATEST = "generator_latest.safetensors"
    BEST = "generator_best.safetensors"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def latest(self) -> Path:
        return self.path / self.LATEST

    @property
    def best(self) -> Path:
        return self.path / self.BEST

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def samples_dir(self) -> Path:
        return self.path / "samples"

    @property
    def losses_plot(self) -> Path:
        return self.path / "losses.png"

    @property
    def index(self) -> Path:
        return self.path / "index.html"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    def is_run(self) -> bool:
        """Whether a run has started here: it holds its config or its metrics."""
        return self.config.is_file() or self.metrics.is_file()

    def changed(self) -> float:
        """When the run last wrote its config or metrics (0 when it has neither)."""
        files = (self.config, self.metrics)
        return max((p.stat().st_mtime for p in files if p.is_file()), default=0.0)

    def state(self, step: int) -> Path:
        """The training checkpoint of ``step``."""
        return self.checkpoints / f"state_{step}.pt"

    def states(self) -> list[Path]:
        """The training checkpoints present, oldest step first: what training resumes from
        and what inference reads before a generator file."""
        found = [
            (int(m[1]), p)
            for p in self.checkpoints.glob("state_*.pt")
            if (m := STATE_NAME.fullmatch(p.name))
        ]
        return [p for _, p in sorted(found)]

    def snapshot(self, step: int) -> Path:
        """The generator file ``log.snapshot_every`` writes at ``step`` (never deleted)."""
        return self.path / "generators" / f"generator_{step}.safetensors"

    def generator(self) -> Path:
        """The best generator file, else the latest; ``FileNotFoundError`` with neither."""
        for candidate in (self.best, self.latest):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(
            f"{self.path}: a directory without a generator; looked for {self.BEST} and "
            f"{self.LATEST}"
        )

    def sample(self, epoch: int, step: int) -> Path:
        """Where the sample grid of ``step`` (in 1-based ``epoch``) goes."""
        return self.samples_dir / f"epoch{epoch:03d}_step{step:07d}.png"

    def samples(self) -> list[Sample]:
        """The sample grids present, lowest step first (none without ``samples/``)."""
        if not self.samples_dir.is_dir():
            return []
        found = [
            Sample(int(m[1]), int(m[2]), p)
            for p in self.samples_dir.iterdir()
            if (m := SAMPLE_NAME.fullmatch(p.name))
        ]
        return sorted(found, key=lambda s: (s.step, s.epoch))
