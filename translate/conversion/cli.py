"""`translate convert`, `translate export`, `translate info` and `translate models`.

Only the option schema and the model names are imported here: what converts, exports or
describes a model imports torch (seconds), so it is imported by the command that runs it and
`--help`, `translate models` and a usage error answer at once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from translate.core.errors import printable, user_errors
from translate.inference.options import (
    ConvertOptions,
    OptionError,
    TranslatorOptions,
    check_groups,
    click_options,
    split,
)
from translate.models.loading import BUNDLED
from translate.models.pretrained import PRETRAINED, cache_path, url

if TYPE_CHECKING:
    from translate.conversion.runner import ConvertSummary

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


@click.command()
@click.argument("model")
@click.argument("input", type=click.Path(exists=True, path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@click_options(TranslatorOptions, ConvertOptions)
@click.option(
    "--report", is_flag=True,
    help="Also write OUTPUT/index.html: input | output (| target) side by side.",
)  # fmt: skip
@click.option(
    "--targets", type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Ground truth for --report (matched by relative path and stem): shown, and scored.",
)  # fmt: skip
@click.option(
    "--files-from", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Convert the files this list names (one a line, relative to the folder INPUT) "
    "instead of walking INPUT.",
)  # fmt: skip
@click.option(
    "--glob", "pattern", metavar="PATTERN",
    help="Convert the files under the folder INPUT that match PATTERN (e.g. '**/*.png').",
)  # fmt: skip
@click.option(
    "--ray", "ray_address", is_flag=False, flag_value="local", default=None,
    metavar="[ADDRESS]",
    help="Convert on Ray Data (the ray extra): join the cluster at ADDRESS (auto: this "
    "machine's), or start a local Ray instance when none is given.",
)  # fmt: skip
@click.option(
    "--actors", type=click.IntRange(min=1), default=None,
    help="With --ray: model copies (actors); default one per GPU, else one per 2 CPUs.",
)  # fmt: skip
@_model_options
def convert(
    model: str,
    input: Path,
    output: Path,
    report: bool,
    targets: Path | None,
    files_from: Path | None,
    pattern: str | None,
    ray_address: str | None,
    actors: int | None,
    arch: str | None,
    norm: str | None,
    **options: Any,
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
    converts its share; with --ray, a pool of Ray actors converts the files (same outputs,
    manifest and exit codes). Exit code 1 when any image or video failed.
    """
    from translate.conversion.convert import IMAGES
    from translate.conversion.runner import listed_inputs, run_conversion, writes_one_file
    from translate.conversion.video import VIDEOS
    from translate.core.process import Ranks
    from translate.inference.translator import Translator

    sources = (IMAGES, VIDEOS)
    if targets is not None and not report:
        raise click.UsageError("--targets is for --report")
    if report and writes_one_file(input, output, sources):
        raise click.UsageError(f"--report writes OUTPUT/index.html; give a folder, not {output}")
    if report and Ranks.from_env().world_size > 1:  # ranks finish apart: no rank sees all
        raise click.UsageError("--report: run it without torchrun")
    if actors is not None and ray_address is None:
        raise click.UsageError("--actors is for --ray")
    if ray_address is not None and Ranks.from_env().world_size > 1:
        raise click.UsageError("--ray spreads the files itself: run it without torchrun")
    if options["precision"] == "int8" and options["calibrate"] is None and input.is_dir():
        options["calibrate"] = str(input)  # its first images calibrate (TranslatorOptions)
    try:
        translating, writing = split(options, TranslatorOptions), split(options, ConvertOptions)
        check_groups(translating, writing)
    except OptionError as exc:
        raise click.UsageError(exc.for_cli()) from exc
    with user_errors():
        inputs = listed_inputs(input, files_from, pattern)
        if ray_address is None:
            translator = Translator.load(model, translating, arch=arch, norm=norm)
            summary = run_conversion(input, output, translator, writing, sources, inputs)
        else:
            from translate.conversion.ray import convert_on_ray

            summary = convert_on_ray(
                input, output, model, translating, writing, sources=sources, inputs=inputs,
                address=None if ray_address == "local" else ray_address, actors=actors,
                arch=arch, norm=norm,
            )  # fmt: skip
    _print_summary(summary, input, output)
    if report:
        from translate.conversion.report import write_report

        with user_errors():
            click.echo(printable(str(write_report(input, output, writing.format, targets))))
    if summary.failed:
        sys.exit(1)


def _print_summary(summary: ConvertSummary, source: Path, output: Path) -> None:
    """What the conversion did; OUTPUT is named only where outputs are, and every path
    is shown as the terminal can show it."""
    from translate.core.process import Ranks

    ranks = Ranks.from_env()
    who = "" if ranks.world_size == 1 else f"rank {ranks.rank}/{ranks.world_size}: "

    def echo(line: str, err: bool = False) -> None:
        click.echo(printable(line), err=err)

    echo(
        f"{who}converted {summary.converted}, skipped {summary.skipped} (already there), "
        f"failed {len(summary.failed)}"
        + (f"; outputs in {output}" if summary.converted or summary.skipped else "")
        + (f"; {len(summary.not_files)} not regular files left alone" if summary.not_files else "")
    )
    if summary.skipped:
        echo("  skipped outputs were kept; --overwrite redoes them")
    for path, frames in summary.first_frame_only:
        echo(f"  first frame only: {path} ({frames} frames)")
    for path, kind in summary.not_files:
        echo(f"  not read: {path}: {kind}, not a regular file", err=True)
    if not (summary.converted or summary.skipped or summary.failed):
        echo(f"  no images or videos found in {source}", err=True)
    for path, reason in summary.failed:
        echo(f"  failed: {path}: {reason}", err=True)


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
@click_options(TranslatorOptions, only=("direction", "norm_stats", "dropout"))
@click.option("--opset", type=click.IntRange(min=7), default=None, help="ONNX opset.")
@click.option(
    "--int8",
    is_flag=True,
    help="Write an int8 ONNX graph, quantized with --calibrate's images (onnxruntime's static "
    "QDQ: int8 weights per channel, uint8 activations); onnxruntime and OpenVINO load it.",
)
@click.option(
    "--calibrate",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="--int8: a folder of images like those the model will convert, at the size it will "
    "run them (a few dozen); also where the quality kept is measured.",
)
@click.option(
    "--min-psnr", type=float, default=None,
    help="--int8: write nothing when the int8 outputs' mean PSNR against fp32's on the "
    "calibration images is under this many dB (default 40).",
)  # fmt: skip
@_model_options
def export(
    model: str,
    out: Path,
    fmt: str,
    direction: str,
    opset: int | None,
    int8: bool,
    calibrate: Path | None,
    min_psnr: float | None,
    arch: str | None,
    norm: str | None,
    norm_stats: str | None,
    dropout: bool | None,
) -> None:
    """Export MODEL's generator to OUT with dynamic batch, height and width.

    With --int8 (ONNX only) the graph is quantized after training on --calibrate's images,
    and the PSNR its outputs keep against the fp32 graph's on them is printed; a model
    under --min-psnr is refused.
    """
    from translate.inference.export import export_generator
    from translate.models.loading import load_model

    if fmt is None:
        fmt = EXPORT_SUFFIXES.get(out.suffix.lower())
        if fmt is None:
            raise click.UsageError(
                f"cannot tell the format from {out.name!r}: give --format torchscript or onnx, "
                "or name OUT .pt or .onnx"
            )

    if int8 and fmt != "onnx":
        raise click.UsageError("--int8 writes ONNX: give --format onnx or name OUT .onnx")
    if int8 and calibrate is None:
        raise click.UsageError("--int8 needs --calibrate FOLDER: images to set its ranges with")
    if not int8 and (calibrate is not None or min_psnr is not None):
        raise click.UsageError("--calibrate and --min-psnr only apply to --int8")

    mode = {"opset": opset, "norm_stats": norm_stats, "dropout": dropout}
    with user_errors():
        loaded = load_model(model, arch=arch, norm=norm)
        if not int8:
            written = export_generator(loaded, out, fmt, direction=direction, **mode)
            click.echo(printable(f"wrote {written}"))
            return
        from translate.inference.quantize import MIN_PSNR, export_int8

        threshold = MIN_PSNR if min_psnr is None else min_psnr
        quality = export_int8(loaded, out, calibrate, direction, threshold, **mode)
    click.echo(printable(f"wrote {out}: int8, {quality.describe()}"))


@click.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@_model_options
def info(model: str, as_json: bool, arch: str | None, norm: str | None) -> None:
    """Describe MODEL: architecture, parameters, expected input, training summary."""
    from translate.models.describe import describe_file

    with user_errors():
        # --arch/--norm: for reference checkpoints only, which load_model checks
        described = describe_file(model) if arch is None and norm is None else None
        if described is None:  # no counts stored: load the networks and count them
            from translate.inference.export import describe_model
            from translate.models.loading import load_model

            described = describe_model(load_model(model, arch=arch, norm=norm), model)
    if as_json:
        click.echo(json.dumps(described, indent=2, default=str))
    else:
        click.echo("\n".join(_describe_lines(described)))


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
        click.echo(f"{name:<28} bundled  {BUNDLED[name]}")
    for name, (kind, _) in sorted(PRETRAINED.items()):
        where = "downloaded" if cache_path(name).is_file() else url(name)
        click.echo(f"{name:<28} {kind:<9} {where}")
