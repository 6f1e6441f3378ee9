"""What a training run leaves for people to read: metrics.jsonl, sample grids, losses.png,
index.html and (when installed) TensorBoard logs.

Plot panels are chosen by metric name: keys starting with ``val`` are validation metrics,
the monitoring stats (``diversity_ratio``, ``d_acc_*``) get their own panel, keys starting
with ``lr`` and the clock (``time``, ``step_seconds``) are not plotted, and everything else
is drawn as a loss curve.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from translate.core.atomic import atomic_path, atomic_write_text
from translate.core.run_dir import RunDir
from translate.data.images import write_image

MONITOR_KEYS = ("diversity_ratio", "d_acc_real", "d_acc_fake")
# The engine's wall clock on each record (seconds since the epoch, seconds per step): not
# plotted, as the learning rates are not.
CLOCK_KEYS = ("time", "step_seconds")
MAX_WARNINGS_SHOWN = 50  # a long collapsed run repeats itself; metrics.jsonl has them all
_HEADER = 14  # pixels of column labels above a sample grid


def utf8_text(data: bytes, where: str) -> str:
    """``data`` decoded; bytes that are not UTF-8 are a ``ValueError`` naming ``where``."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{where}: damaged: byte {data[exc.start]:#04x} at offset {exc.start} is not UTF-8"
        ) from None


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl file; a line cut short by a crash is skipped. Lines
    are written as ASCII JSON, so one that is not UTF-8 is damage: ``ValueError`` naming it."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for number, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            record = json.loads(utf8_text(raw, f"{path}:{number}"))
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "step" in record:
            records.append(record)
    return records


def _series(records: list[dict[str, Any]]) -> dict[str, tuple[list[int], list[float]]]:
    """Per metric, steps and values in step order; a step logged twice (a run resumed from
    an earlier checkpoint) keeps its latest value."""
    by_key: dict[str, dict[int, float]] = {}
    for record in records:
        for key, value in record.items():
            if key in ("step", "epoch") or type(value) not in (int, float):
                continue
            by_key.setdefault(key, {})[int(record["step"])] = float(value)
    return {k: (sorted(v), [v[s] for s in sorted(v)]) for k, v in by_key.items()}


def metric_panel(key: str) -> str | None:
    """The plot a metric is drawn in: losses, validation, monitoring or None (not plotted)."""
    if key.startswith("lr") or key in CLOCK_KEYS:
        return None
    if key.startswith("val"):
        return "validation"
    if key in MONITOR_KEYS:
        return "monitoring"
    return "losses"


def plot_metrics(records: list[dict[str, Any]], path: str | os.PathLike[str]) -> None:
    """Write a PNG of the loss curves vs step, and validation/monitoring panels when logged.

    Validation metrics get one small plot each, since their scales differ (L1 vs PSNR).
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    panels: dict[str, dict[str, tuple[list[int], list[float]]]] = {}
    for key, series in sorted(_series(records).items()):
        name = metric_panel(key)
        if name is not None:
            panels.setdefault(name, {})[key] = series
    # rows of plots, each plot a title and its curves
    rows = [[("losses", panels.get("losses", {}))]]
    rows += [[(key, {key: series}) for key, series in panels.get("validation", {}).items()]]
    rows += [[("monitoring", panels["monitoring"])]] if "monitoring" in panels else []
    rows = [row for row in rows if row]
    fig = plt.figure(figsize=(9, 3.2 * len(rows)), layout="constrained")
    for subfig, row in zip(np.atleast_1d(fig.subfigures(len(rows), 1)), rows, strict=True):
        for ax, (title, curves) in zip(
            np.atleast_1d(subfig.subplots(1, len(row))), row, strict=True
        ):
            for key, (steps, values) in curves.items():
                ax.plot(steps, values, label=key, marker="o" if len(steps) < 20 else None, lw=1)
            ax.set_title(title)
            finite = [v for _, values in curves.values() for v in values if math.isfinite(v)]
            # weighted terms (pix2pix's 100 x L1) dwarf the GAN losses on a linear axis
            if title == "losses" and finite and 0 < min(finite) < max(finite) / 10:
                ax.set_yscale("log")
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            if curves and list(curves) != [title]:
                ax.legend(fontsize="small", loc="best")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def sample_grid(images: dict[str, torch.Tensor]) -> np.ndarray:
    """HWC uint8 grid: one column per key, one row per example, a label above each column.

    Tensors are NCHW in [-1, 1]; one- and two-channel images are shown as gray, and of more
    channels the first three (RGBA: its colour). Batches smaller than the largest (the input of a
    generator whose output is a multiple of it) are shown enlarged to its size.
    """
    from torchvision.utils import make_grid  # torchvision only once a sample grid is drawn

    if not images:
        raise ValueError("sample_grid needs at least one image batch")
    for batch in images.values():
        if batch.ndim != 4 or batch.shape[0] != next(iter(images.values())).shape[0]:
            counts = {k: tuple(v.shape) for k, v in images.items()}
            raise ValueError(f"sample batches differ in count or are not N x C x H x W: {counts}")
    height = max(v.shape[-2] for v in images.values())
    width = max(v.shape[-1] for v in images.values())
    columns = []
    for batch in images.values():
        batch = batch.detach().float().cpu()
        batch = batch[:, :3] if batch.shape[1] >= 3 else batch[:, :1]
        if batch.shape[-2:] != (height, width):
            batch = torch.nn.functional.interpolate(batch, size=(height, width), mode="nearest")
        columns.append(batch.expand(-1, 3, -1, -1))
    # rows of [key0, key1, ...] for each example, as make_grid fills row by row
    tiles = torch.stack(columns, dim=1).flatten(0, 1)
    grid = make_grid((tiles.clamp(-1, 1) + 1) / 2, nrow=len(images), padding=2, pad_value=1)
    body = (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    header = Image.new("RGB", (body.shape[1], _HEADER), (255, 255, 255))
    draw = ImageDraw.Draw(header)
    font = ImageFont.load_default()
    for i, key in enumerate(images):
        draw.text((2 + i * (width + 2) + 2, 1), key, fill=(0, 0, 0), font=font)
    return np.concatenate([np.asarray(header), body], axis=0)


class RunReport:
    """The run directory's human-readable side; every method is a no-op when disabled."""

    def __init__(
        self, run_dir: str | os.PathLike[str], enabled: bool = True, tensorboard: bool = True,
        resume_step: int | None = None,
    ) -> None:  # fmt: skip
        """``resume_step``: the run continues from that step's checkpoint; what an earlier
        attempt logged after it is dropped (metrics.jsonl, sample grids, TensorBoard), since
        the resumed run logs those steps again."""
        self.run = RunDir(run_dir)
        self.enabled = enabled
        self._file = None
        self._writer = None
        if not enabled:
            return
        self.run.samples_dir.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            self._drop_after(resume_step)
        self._file = open(self.run.metrics, "a+", encoding="utf-8")  # noqa: SIM115
        self._end_cut_line()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is an optional extra
                pass
            else:
                purge = None if resume_step is None else resume_step + 1
                self._writer = SummaryWriter(str(self.run.tensorboard), purge_step=purge)

    def _drop_after(self, step: int) -> None:
        kept = [r for r in read_metrics(self.run.metrics) if r["step"] <= step]
        if self.run.metrics.exists():
            atomic_write_text(self.run.metrics, "".join(json.dumps(r) + "\n" for r in kept))
        for sample in self.run.samples():
            if sample.step > step:
                sample.path.unlink()

    def _end_cut_line(self) -> None:
        # A run killed mid-write leaves a line without its newline; start ours on a fresh one.
        self._file.seek(0, os.SEEK_END)
        if self._file.tell() == 0:
            return
        with open(self.run.metrics, "rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                self._file.write("\n")
                self._file.flush()

    def log(
        self, step: int, epoch: int, metrics: dict[str, float], warnings: Sequence[str] = ()
    ) -> None:
        """Append one record to metrics.jsonl (flushed at once) and to TensorBoard.

        ``warnings`` (e.g. from ``monitor_warnings``) are stored with the record and shown
        on index.html.
        """
        if not self.enabled:
            return
        values = {}
        for key, value in metrics.items():
            try:
                values[key] = float(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"metric {key!r} is not a number: {value!r}") from exc
        record: dict[str, Any] = {"step": int(step), "epoch": int(epoch), **values}
        if warnings:
            record["warnings"] = list(warnings)
        # NaN/inf are written as NaN/Infinity, which Python's json reads back
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._writer is not None:
            for key, value in values.items():
                if math.isfinite(value):
                    self._writer.add_scalar(key, value, step)
            for message in warnings:
                self._writer.add_text("warnings", message, step)

    def samples(self, epoch: int, step: int, images: dict[str, torch.Tensor]) -> Path | None:
        """Save ``samples/epoch<EEE>_step<SSSSSSS>.png``, a grid of the given batches."""
        if not self.enabled:
            return None
        grid = sample_grid(images)
        path = self.run.sample(epoch, step)
        write_image(path, grid)
        if self._writer is not None:
            self._writer.add_image("samples", grid, step, dataformats="HWC")
        return path

    def update_index(self) -> None:
        """Redraw losses.png and index.html from metrics.jsonl and the sample files."""
        if not self.enabled:
            return
        records = read_metrics(self.run.metrics)
        plot_metrics(records, self.run.losses_plot)
        atomic_write_text(self.run.index, self._html(records))
        if self._writer is not None:
            self._writer.flush()

    def _html(self, records: list[dict[str, Any]]) -> str:
        title = html.escape(self.run.path.resolve().name)
        last = records[-1] if records else {}
        parts = [
            "<!doctype html>",
            f"<html><head><meta charset='utf-8'><title>{title}</title>",
            "<style>body{font-family:sans-serif;margin:1em} img{max-width:100%}"
            " .warn{color:#a00}</style></head><body>",
            f"<h1>{title}</h1>",
            f"<p>step {last.get('step', 0)}, epoch {last.get('epoch', 0)}</p>",
            f"<img src='losses.png?step={last.get('step', 0)}' alt='loss curves'>",
        ]
        warned = [(r["step"], r["epoch"], w) for r in records for w in r.get("warnings", ())]
        if warned:
            parts.append("<h2>Warnings (newest first)</h2><ul class='warn'>")
            parts += [
                f"<li>step {s}, epoch {e}: {html.escape(str(w))}</li>"
                for s, e, w in warned[::-1][:MAX_WARNINGS_SHOWN]
            ]
            if len(warned) > MAX_WARNINGS_SHOWN:
                parts.append(f"<li>... and {len(warned) - MAX_WARNINGS_SHOWN} earlier</li>")
            parts.append("</ul>")
        parts.append("<h2>Samples</h2>")
        for epoch, step, path in reversed(self.run.samples()):
            parts.append(
                f"<h3>epoch {epoch}, step {step}</h3>"
                f"<img src='{html.escape(path.relative_to(self.run.path).as_posix())}' "
                f"alt='samples at step {step}'>"
            )
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> RunReport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
