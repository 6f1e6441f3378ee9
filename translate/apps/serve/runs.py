"""Training runs under a folder, as the page shows them: list, config, metrics, samples.

Runs are found by scanning, and a request names a run and a sample only by the names that
scan found: no path from a request ever reaches the file system.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from translate.core.run_dir import RunDir
from translate.training.configure import trainer_spec
from translate.training.report import metric_panel, read_metrics, utf8_text

SAMPLES_SHOWN = 6  # the latest grids; older ones stay in the run folder


class RunNotFound(LookupError):
    pass


def _finite(value: Any) -> Any:
    # NaN/inf losses are worth showing as gaps, and JSON has no spelling for them.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Runs:
    """The runs in ``root``: ``root`` itself when it is a run, and its run subfolders."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise FileNotFoundError(f"--runs {root}: not a directory")
        self.root = root

    def scan(self) -> dict[str, Path]:
        """Run name -> folder, newest change first."""
        candidates = [self.root, *(p for p in self.root.iterdir() if p.is_dir())]
        found = {
            (p.name if p != self.root else p.resolve().name): p
            for p in candidates
            if not p.name.startswith(".") and RunDir(p).is_run()
        }
        return dict(sorted(found.items(), key=lambda item: -RunDir(item[1]).changed()))

    def path(self, name: str) -> Path:
        runs = self.scan()
        if name not in runs:
            raise RunNotFound(f"no run named {name!r} in {self.root}")
        return runs[name]

    def summary(self) -> list[dict[str, Any]]:
        """Each run's last step and epoch; ``error`` says why a damaged run has none."""
        result = []
        for name, path in self.scan().items():
            records, error = _metrics(path)
            last = records[-1] if records else {}
            result.append(
                {
                    "name": name,
                    "step": last.get("step", 0),
                    "epoch": last.get("epoch", 0),
                    "changed": RunDir(path).changed(),
                    "error": error,
                }
            )
        return result

    def detail(self, name: str) -> dict[str, Any]:
        """The run's config (``error``: why it is not shown) and newest samples."""
        path = self.path(name)
        config = RunDir(path).config
        error = None
        try:
            text = utf8_text(config.read_bytes(), str(config)) if config.is_file() else ""
        except ValueError as exc:
            text, error = "", str(exc)
        return {
            "name": name,
            "config": text,
            "error": error,
            "samples": self.samples(name)[:SAMPLES_SHOWN],
            "unpaired": _trains_unpaired(text),
        }

    def metrics(self, name: str, since: int = 0) -> dict[str, Any]:
        """Records from the ``since``-th on, the count to ask from next time, and the plot
        (``panels``) of each metric in them, as losses.png groups them.

        A line still being written is left out until it is whole: it is the last one, so the
        count stays right.
        """
        records, error = _metrics(self.path(name))
        new = [{k: _finite(v) for k, v in r.items()} for r in records[max(0, since) :]]
        keys = {k for r in new for k, v in r.items() if isinstance(v, (int, float))}
        panels = {k: metric_panel(k) for k in keys - {"step", "epoch"}}
        return {"records": new, "next": len(records), "panels": panels, "error": error}

    def samples(self, name: str) -> list[str]:
        """Sample grid file names, newest (highest step) first."""
        return [sample.path.name for sample in reversed(RunDir(self.path(name)).samples())]

    def sample_path(self, name: str, sample: str) -> Path:
        if sample not in self.samples(name):
            raise RunNotFound(f"run {name!r} has no sample {sample!r}")
        return RunDir(self.path(name)).samples_dir / sample


def _metrics(run: Path) -> tuple[list[dict[str, Any]], str | None]:
    """The run's metric records, or none and why, where its metrics.jsonl is damaged: one
    damaged run must not hide the others."""
    try:
        return read_metrics(RunDir(run).metrics), None
    except ValueError as exc:
        return [], str(exc)


def _trains_unpaired(config: str) -> bool:
    """Whether the run's trainer learns from unpaired data: it never has validation scores,
    as there are no targets to score against (False when the config does not say)."""
    try:
        model = (yaml.safe_load(config) or {}).get("model")
        return model is not None and trainer_spec(model).data == "unpaired"
    except (yaml.YAMLError, AttributeError, ValueError):  # half-written or not a mapping
        return False
