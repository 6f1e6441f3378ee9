"""`translate convert`, `translate export`, `translate info` and `translate models`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from translate.errors import user_errors
from translate.runtime import PRECISIONS, Ranks

from ..networks.test_mode import NORM_STATS
from .backends import BACKEND_HELP, BACKENDS
from .convert import (
    CODEC,
    FORMAT_ALIASES,
    FORMATS,
    ConvertOptions,
    ConvertSummary,
    convert_folder,
    writes_one_file,
)
from .loading import BUNDLED
from .pretrained import PRETRAINED, cache_path, url
from .translator import OVERLAP, Translator
from .video import convert_videos, is_video_path

DIRECTIONS = ("AtoB", "BtoA")
# OUT's suffix -> the export format it implies
EXPORT_SUFFIXES = {".pt": "torchscript", ".ts": "torchscript", ".onnx": "onnx"}


def _model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--arch``/``--norm``: override what is inferred from a reference checkpoint."""
    command = click.option(
        "--norm", default=None, help="Norm layers of a reference .pth (batch, instance, none)."
    )(command)
    return click.option(
        "--arch", default=None, help="Architecture of a reference .pth, e.g. resnet_9blocks."
    )(command)


def _test_mode_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--norm-stats``/``--dropout``: how batch norm generators normalise at test time."""
    command = click.option(
        "--dropout/--no-dropout",
        default=None,
        help="Keep dropout on at test time (convert seeds each image's masks: --seed). "
        "Default: as the model records.",
    )(command)
    return click.option(
        "--norm-stats",
        type=click.Choice(NORM_STATS),
        default=None,
        help="Batch norm statistics: running (eval mode) or batch (each image's own, as the "
        "reference's default test). Default: what validation scored better, as the model "
        "records (else running).",
    )(command)


@click.command()
@click.argument("model")
@click.argument("input", type=click.Path(exists=True, path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@click.option(
    "--direction",
    type=click.Choice(DIRECTIONS),
    default="AtoB",
    show_default=True,
    help="Which generator of a CycleGAN model to use.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default="auto",
    show_default=True,
    help="Autocast precision; auto is fp16 on CUDA, bf16 on a CPU with native bf16, "
    "else fp32 (fp16 needs CUDA).",
)
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="torch",
    show_default=True,
    help=BACKEND_HELP,
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice((*FORMATS, *FORMAT_ALIASES), case_sensitive=False),
    default="same",
    show_default=True,
    help="Output format (jpeg = jpg); 'same' keeps each input's.",
)
@click.option(
    "--quality",
    type=click.IntRange(1, 100),
    default=95,
    show_default=True,
    help="JPEG/WebP quality.",
)
@click.option(
    "--size",
    type=click.IntRange(min=1),
    default=None,
    help="Resize to SIZE x SIZE for the model, then back. Default: native resolution.",
)
@click.option(
    "--tile",
    type=click.IntRange(min=1),
    default=None,
    help="Translate large images in TILE x TILE tiles.",
)
@click.option(
    "--overlap",
    type=click.IntRange(min=0),
    default=None,
    help=f"Pixels shared by neighbouring tiles, blended. Default: a quarter of the tile, at "
    f"most {OVERLAP}.",
)
@click.option(
    "--resize-shorter",
    type=click.IntRange(min=1),
    default=None,
    help="Resize so the shorter side is N (bilinear, as torchvision's Resize(N)) first.",
)
@click.option(
    "--center-crop",
    type=click.IntRange(min=1),
    default=None,
    help="Then translate the centre MxM crop (torchvision's CenterCrop(M)); outputs are MxM.",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=None,
    help="Most pixels the model takes in one pass (an image, or a tile with --tile); larger "
    "images fail with a reason naming --tile. Default: what fits in half the free memory, "
    "estimated from the model.",
)
@click.option("--overwrite", is_flag=True, help="Redo outputs that already exist.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Decoding threads, and as many encoding threads (default: up to 8).",
)
@click.option("--codec", default=CODEC, show_default=True, help="Video encoder (FFmpeg's name).")
@click.option(
    "--crf",
    type=click.IntRange(0, 63),
    default=None,
    help="Video quality, lower is better (H.264: 0-51, encoder default 23).",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option(
    "--report", is_flag=True,
    help="Also write OUTPUT/index.html: input | output (| target) side by side.",
)  # fmt: skip
@click.option(
    "--targets", type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Ground truth for --report (matched by relative path and stem): shown, and scored.",
)  # fmt: skip
@_model_options
@_test_mode_options
@click.option(
    "--seed", type=int, default=0, show_default=True,
    help="With --dropout: each image's dropout is drawn from this and its pixels, so a "
    "rerun or a resumed run gives the same outputs.",
)  # fmt: skip
def convert(
    model: str,
    input: Path,
    output: Path,
    direction: str,
    batch_size: int,
    device: str,
    precision: str,
    backend: str,
    fmt: str,
    quality: int,
    size: int | None,
    tile: int | None,
    overlap: int | None,
    resize_shorter: int | None,
    center_crop: int | None,
    max_pixels: int | None,
    overwrite: bool,
    workers: int | None,
    codec: str,
    crf: int | None,
    progress: bool,
    report: bool,
    targets: Path | None,
    arch: str | None,
    norm: str | None,
    norm_stats: str | None,
    dropout: bool | None,
    seed: int,
) -> None:
    """Translate INPUT (an image, a video or a folder of them, recursive) into the folder
    OUTPUT (for one image or video, OUTPUT may also be a file such as out.png or out.mp4,
    written in that file's format; it gets no manifest and is skipped if it exists, unless
    --overwrite).

    MODEL is a .safetensors generator file, a run directory, a bundled model name (demo),
    a reference pytorch-CycleGAN-and-pix2pix .pth, or a community upscaler/restorer
    checkpoint (ESRGAN, Real-ESRGAN, SwinIR, ...; the spandrel extra). OUTPUT mirrors
    INPUT's relative paths; existing outputs are skipped (so a rerun resumes) unless
    --overwrite. Videos keep their frame rate, duration and audio. Under torchrun each rank
    converts its share. Exit code 1 when any image or video failed.
    """
    if targets is not None and not report:
        raise click.UsageError("--targets is for --report")
    if report and writes_one_file(input, output):
        raise click.UsageError(f"--report writes OUTPUT/index.html; give a folder, not {output}")
    if report and Ranks.from_env().world_size > 1:  # ranks finish apart: no rank sees all
        raise click.UsageError("--report: run it without torchrun")
    if size is not None and tile is not None:
        raise click.UsageError(
            "--size and --tile exclude each other: --size resizes each image for the model, "
            "--tile translates it at its own resolution in pieces"
        )
    if tile is not None and overlap is not None and overlap >= tile:
        raise click.UsageError(f"--overlap {overlap} must be less than --tile {tile}")
    with user_errors():
        translator = Translator.load(
            model,
            arch=arch,
            norm=norm,
            device=device,
            precision=precision,
            backend=backend,
            direction=direction,
            size=size,
            tile=tile,
            overlap=overlap,
            batch_size=batch_size,
            norm_stats=norm_stats,
            dropout=dropout,
            seed=seed,
        )
        options = ConvertOptions(
            format=fmt,
            quality=quality,
            overwrite=overwrite,
            workers=workers,
            progress=progress,
            max_pixels=max_pixels,
            codec=codec,
            crf=crf,
            resize_shorter=resize_shorter,
            center_crop=center_crop,
        )
        summary = ConvertSummary()
        if not is_video_path(input):
            summary = convert_folder(input, output, translator, options)
        videos = convert_videos(input, output, translator, options)
    summary.converted += videos.converted
    summary.skipped += videos.skipped
    summary.failed += videos.failed
    summary.not_files += videos.not_files
    _print_summary(summary, input, output)
    if report:
        from .report import write_report

        with user_errors():
            click.echo(write_report(input, output, fmt, targets))
    if summary.failed:
        sys.exit(1)


def _print_summary(summary: ConvertSummary, source: Path, output: Path) -> None:
    ranks = Ranks.from_env()
    who = "" if ranks.world_size == 1 else f"rank {ranks.rank}/{ranks.world_size}: "
    click.echo(
        f"{who}converted {summary.converted}, skipped {summary.skipped} (already there), "
        f"failed {len(summary.failed)}; outputs in {output}"
        + (f"; {len(summary.not_files)} not regular files left alone" if summary.not_files else "")
    )
    if summary.skipped:
        click.echo("  skipped outputs were kept; --overwrite redoes them")
    for path, frames in summary.first_frame_only:
        click.echo(f"  first frame only: {path} ({frames} frames)")
    for path, kind in summary.not_files:
        click.echo(f"  not read: {path}: {kind}, not a regular file", err=True)
    if not (summary.converted or summary.skipped or summary.failed):
        click.echo(f"  no images or videos found in {source}", err=True)
    for path, reason in summary.failed:
        click.echo(f"  failed: {path}: {reason}", err=True)


@click.command()
@click.argument("model")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("torchscript", "onnx"), case_sensitive=False),
    default=None,
    help="TorchScript or ONNX (needs the onnx extra); default: from OUT's suffix "
    "(.pt or .ts / .onnx).",
)
@click.option("--direction", type=click.Choice(DIRECTIONS), default="AtoB", show_default=True)
@click.option("--opset", type=click.IntRange(min=7), default=None, help="ONNX opset.")
@_model_options
@_test_mode_options
def export(
    model: str,
    out: Path,
    fmt: str,
    direction: str,
    opset: int | None,
    arch: str | None,
    norm: str | None,
    norm_stats: str | None,
    dropout: bool | None,
) -> None:
    """Export MODEL's generator to OUT with dynamic batch, height and width."""
    from .export import export_generator
    from .loading import load_model

    if fmt is None:
        fmt = EXPORT_SUFFIXES.get(out.suffix.lower())
        if fmt is None:
            raise click.UsageError(
                f"cannot tell the format from {out.name!r}: give --format torchscript or onnx, "
                "or name OUT .pt or .onnx"
            )

    with user_errors():
        written = export_generator(
            load_model(model, arch=arch, norm=norm),
            out,
            fmt,
            direction=direction,
            opset=opset,
            norm_stats=norm_stats,
            dropout=dropout,
        )
    click.echo(f"wrote {written}")


@click.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@_model_options
def info(model: str, as_json: bool, arch: str | None, norm: str | None) -> None:
    """Describe MODEL: architecture, parameters, expected input, training summary."""
    from .export import describe_model
    from .loading import load_model

    with user_errors():
        description = describe_model(load_model(model, arch=arch, norm=norm), model)
    if as_json:
        click.echo(json.dumps(description, indent=2, default=str))
    else:
        click.echo("\n".join(_describe_lines(description)))


def _describe_lines(value: Any, indent: int = 0) -> Iterator[str]:
    """Nested dicts and lists as indented ``key: value`` lines."""
    pad = "  " * indent
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        label = f"{pad}{key}:" if isinstance(value, dict) else f"{pad}-"
        if isinstance(item, (dict, list)) and item:
            yield label
            yield from _describe_lines(item, indent + 1)
        else:
            yield f"{label} {_plain(item)}"


def _plain(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return "(none)"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


@click.command()
def models() -> None:
    """List the models that load by name: bundled ones and the reference's pretrained
    generators (downloaded into TRANSLATE_HOME, default ~/.cache/translate, on first use)."""
    for name in sorted(BUNDLED):
        click.echo(f"{name:<28} bundled")
    for name, (kind, _) in sorted(PRETRAINED.items()):
        where = "downloaded" if cache_path(name).is_file() else url(name)
        click.echo(f"{name:<28} {kind:<9} {where}")
