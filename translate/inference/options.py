"""The inference options, written once.

Each option is a dataclass field whose metadata (:func:`option`) carries its help text, its
check and whether the conversion manifest records it; the default is the field's. From these
fields come the ``translate convert`` click options (:func:`click_options`), the query
parameters ``translate serve`` takes (:func:`query_values`), the manifest's options
(:func:`recorded`) and the validation (each group's ``__post_init__``: :func:`check_fields`,
then the checks between fields, written once here).

The groups: :class:`TranslatorOptions` (how images are translated: :class:`Translator`),
:class:`RunOptions` (how any conversion runs), :class:`ImageOptions` (image files only) and
:class:`VideoOptions` (video files only). A conversion source takes only its groups; an
option marked ``changes_pixels`` of a group it does not take fails its files rather than
being ignored.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import click

from translate.core.choices import (
    BACKEND_HELP,
    BACKENDS,
    DIRECTIONS,
    INFERENCE_PRECISIONS,
    NORM_STATS,
)
from translate.data.images import FAST_PNG
from translate.inference.formats import canonical, format_choices

# Pixels neighbouring tiles share by default, at most a quarter of the tile so that any tile
# size works and small tiles do not mostly repeat each other.
OVERLAP = 32
CODEC = "h264"  # the default video encoder
# The default --min-psnr of int8 models, in dB: an RMS difference from fp32's outputs of 1%
# of the range (about 2.5 grey levels).
MIN_PSNR = 40.0


class OptionError(ValueError):
    """A refused option value. ``template`` names options as ``{name}``: the API's message
    shows the field name (``size``), :meth:`for_cli` the flag (``--size``)."""

    def __init__(self, template: str, *names: str) -> None:
        self.template, self.names = template, names
        super().__init__(template.format(**{name: name for name in names}))

    def for_cli(self) -> str:
        return self.template.format(**{name: flag(name) for name in self.names})


def flag(name: str) -> str:
    """The command-line flag of the option ``name``: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class Range:
    """A whole number in [min, max] (either end open when None)."""

    min: int | None = None
    max: int | None = None

    def click_type(self) -> click.ParamType:
        return click.IntRange(self.min, self.max)

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected a whole number, got {value!r}"
        if self.min is not None and value < self.min:
            return f"must be at least {self.min}, got {value}"
        if self.max is not None and value > self.max:
            return f"must be at most {self.max}, got {value}"
        return None


@dataclass(frozen=True)
class OneOf:
    """One of ``values``, or of what ``values()`` returns when the choices come from a
    registry that may grow (in any case when ``case_sensitive`` is off)."""

    values: tuple[str, ...] | Callable[[], tuple[str, ...]]
    case_sensitive: bool = True

    def choices(self) -> tuple[str, ...]:
        return self.values() if callable(self.values) else self.values

    def click_type(self) -> click.ParamType:
        return click.Choice(self.choices(), case_sensitive=self.case_sensitive)

    def problem(self, value: Any) -> str | None:
        choices = self.choices()
        if (value if self.case_sensitive else str(value).lower()) not in choices:
            listed = ", ".join(choices[:-1]) + " or " if len(choices) > 1 else ""
            listed += choices[-1]
            return f"expected {listed}, got {value!r}"
        return None


Check = Range | OneOf


@dataclass(frozen=True)
class Meta:
    """What a field says besides its type and default (see :func:`option`)."""

    help: str
    check: Check | None = None
    cli: bool = True
    serve: bool = False
    record: bool | Callable[[Any], Any] = False
    changes_pixels: bool = False
    unrecorded: Any = None


def option(
    default: Any,
    help: str,
    *,
    check: Check | None = None,
    cli: bool = True,
    serve: bool = False,
    record: bool | Callable[[Any], Any] = False,
    changes_pixels: bool = False,
    unrecorded: Any = None,
) -> Any:
    """A dataclass field that is an inference option.

    ``check``: the values it takes (None: any value of its type, or None where the type
    allows); ``cli``: a ``translate convert`` flag; ``serve``: a query parameter of
    ``translate serve``'s translate request; ``record``: the manifest records it, as the
    value (True) or as ``record(owner)`` of what the group configures (the resolved value: a
    :class:`Translator` for its options); ``changes_pixels``: a source that does not take the
    option's group fails its files when it is set, instead of ignoring it; ``unrecorded``:
    what a manifest written before the option was recorded meant (the behaviour then), so
    that a rerun into an older folder compares against it.
    """
    meta = Meta(help, check, cli, serve, record, changes_pixels, unrecorded)
    return field(default=default, metadata={"option": meta})


def meta(f: dataclasses.Field[Any]) -> Meta:
    return f.metadata["option"]


def check_fields(options: Any) -> None:
    """Each field's own check (``OptionError`` naming the first bad one)."""
    for f in dataclasses.fields(options):
        value, check = getattr(options, f.name), meta(f).check
        problem = None if check is None or value is None else check.problem(value)
        if problem is not None:
            raise OptionError(f"{{{f.name}}}: {problem}", f.name)


@dataclass(frozen=True)
class TranslatorOptions:
    """How :class:`~translate.inference.translator.Translator` translates; see its help."""

    direction: str = option(
        "AtoB", "Which generator of a CycleGAN model to use.", check=OneOf(DIRECTIONS), serve=True
    )
    batch_size: int = option(
        4, "Images gathered per call (each still runs on its own).", check=Range(1)
    )
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps.")
    precision: str = option(
        "auto",
        "Autocast precision; auto is fp16 on CUDA, bf16 on a CPU with native bf16, else fp32 "
        "(fp16 needs CUDA). int8: the ONNX graph quantized with --calibrate's images "
        "(--backend onnxruntime, openvino or auto).",
        check=OneOf(INFERENCE_PRECISIONS),
        record=lambda translator: translator.precision.name,
    )
    backend: str = option(
        "torch", BACKEND_HELP, check=OneOf(BACKENDS), record=lambda translator: translator.backend
    )
    compile: bool = option(
        False,
        "--backend torch: run the generator through torch.compile (inductor; on the CPU it "
        "needs g++). Faster in bf16 on the CPU, but the first call at each input size "
        "compiles for 10-60 s: for long runs of one size (a camera, a large folder).",
        record=True,
        unrecorded=False,
    )
    calibrate: str | None = option(
        None,
        "--precision int8: a folder of images like those to translate; its first 16 (sorted) "
        "set the int8 ranges and measure the PSNR kept. convert's default: its input folder.",
        record=lambda translator: translator.int8_record(),
    )
    min_psnr: float = option(
        MIN_PSNR,
        "--precision int8: refuse the int8 model when its outputs' mean PSNR against fp32's "
        "on the calibration images is under this many dB.",
        record=lambda translator: translator.options.min_psnr if translator.int8 else None,
    )
    size: int | None = option(
        None,
        "Resize to SIZE x SIZE for the model, then back. Default: native resolution.",
        check=Range(1),
        record=True,
    )
    tile: int | None = option(
        None,
        "Translate large images in TILE x TILE tiles.",
        check=Range(1),
        serve=True,
        record=True,
    )
    overlap: int | None = option(
        None,
        f"Pixels shared by neighbouring tiles, blended. Default: a quarter of the tile, at most "
        f"{OVERLAP}.",
        check=Range(0),
        record=lambda translator: translator.overlap if translator.tile is not None else None,
    )
    value_range: tuple[float, float] = option(
        (0.0, 1.0), "The range of float inputs, e.g. (-1, 1) after Normalize(0.5, 0.5).", cli=False
    )
    norm_stats: str | None = option(
        None,
        "Batch norm statistics: running (eval mode) or batch (each image's own, as the "
        "reference's default test). Default: what validation scored better, as the model "
        "records (else running).",
        check=OneOf(NORM_STATS),
        record=lambda translator: translator.eval_mode.norm_stats,
    )
    dropout: bool | None = option(
        None,
        "Keep dropout on at test time (convert seeds each image's masks: --seed). Default: as "
        "the model records.",
        record=lambda translator: translator.eval_mode.dropout,
    )
    seed: int = option(
        0,
        "A model with a noise input (noise_dim) draws its code from this: the same seed and "
        "input give the same output. With --dropout: each image's dropout is drawn from this "
        "and its pixels, so a rerun or a resumed run gives the same outputs.",
        serve=True,
        record=lambda translator: (
            translator.seed
            if translator.eval_mode.dropout
            or (translator.noise_dim and translator.options.style is None)
            else None
        ),
    )
    style: str | None = option(
        None,
        "An image whose style a model with a style encoder copies: its code is the encoded "
        "image instead of noise drawn from --seed.",
        record=True,
    )

    def __post_init__(self) -> None:
        check_fields(self)
        if self.size is not None and self.tile is not None:
            raise OptionError(
                "{size} and {tile} exclude each other: {size} resizes each image for the "
                "model, {tile} translates it at its own resolution in pieces",
                "size",
                "tile",
            )
        if self.overlap is not None and self.tile is None:
            raise OptionError(
                "{overlap} is the pixels neighbouring tiles share: give {tile} too, or drop it",
                "overlap",
                "tile",
            )
        if self.tile is not None and self.overlap is not None and self.overlap >= self.tile:
            raise OptionError(
                f"{{overlap}} {self.overlap} must be less than {{tile}} {self.tile}",
                "overlap",
                "tile",
            )
        if self.calibrate is not None and self.precision != "int8":
            raise OptionError(
                "{calibrate} is for {precision} int8: drop it, or quantize",
                "calibrate",
                "precision",
            )
        low, high = self.value_range
        if not low < high:
            raise OptionError(
                f"{{value_range}} must be (low, high) with low < high, got {self.value_range}",
                "value_range",
            )

    def tile_overlap(self) -> int:
        """The overlap tiles use: the one given, else a quarter of the tile, at most OVERLAP."""
        if self.overlap is not None:
            return self.overlap
        return OVERLAP if self.tile is None else min(OVERLAP, self.tile // 4)


class Checked:
    """A group whose fields need only their own checks."""

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class RunOptions(Checked):
    """How a conversion runs, for images and videos alike."""

    overwrite: bool = option(False, "Redo outputs that already exist.")
    workers: int | None = option(
        None, "Decoding threads, and as many encoding threads (default: up to 8).", check=Range(1)
    )
    progress: bool = option(True, "Show progress bars.")
    max_pixels: int | None = option(
        None,
        "Most pixels the model takes in one pass (an image, or a tile with --tile); larger "
        "images fail with a reason naming --tile. Default: what fits in half the free memory, "
        "estimated from the model.",
        check=Range(1),
    )


@dataclass(frozen=True)
class ImageOptions(Checked):
    """How image files are read and written."""

    files: ClassVar[str] = "images"  # what the group is for, in messages

    format: str = option(
        "same",
        "Output format (jpeg = jpg); 'same' keeps each input's.",
        check=OneOf(format_choices, case_sensitive=False),
        record=lambda options: canonical(options.format),
    )
    quality: int = option(95, "JPEG/WebP quality.", check=Range(1, 100), record=True)
    png_compression: int = option(
        FAST_PNG,
        "PNG zlib level, 0 (none) to 9 (smallest files); the pixels are the same at every "
        "level. The default 1 (PNG's Sub filter on every row, ISA-L's deflate) encodes a "
        "256 px image in about a tenth of the time of 6 (PIL's default), for files about "
        "6% larger: encoding is the largest cost after the model.",
        check=Range(0, 9),
        record=True,
        unrecorded=6,  # PIL's default, which the converter wrote with before
    )
    resize_shorter: int | None = option(
        None,
        "Resize so the shorter side is N (bilinear, as torchvision's Resize(N)) first.",
        check=Range(1),
        record=True,
        changes_pixels=True,
    )
    center_crop: int | None = option(
        None,
        "Then translate the centre MxM crop (torchvision's CenterCrop(M)); outputs are MxM.",
        check=Range(1),
        record=True,
        changes_pixels=True,
    )


@dataclass(frozen=True)
class VideoOptions(Checked):
    """How video files are encoded."""

    files: ClassVar[str] = "videos"

    codec: str = option(CODEC, "Video encoder (FFmpeg's name).", record=True)
    crf: int | None = option(
        None,
        "Video quality, lower is better (H.264: 0-51, encoder default 23).",
        check=Range(0, 63),
        record=True,
    )


@dataclass(frozen=True)
class ConvertOptions(RunOptions, VideoOptions, ImageOptions):
    """How :func:`~translate.conversion.convert.convert_folder` and the videos write: the
    fields of :class:`ImageOptions`, :class:`VideoOptions` and :class:`RunOptions` in one
    object (how images are translated is the Translator's). Each source reads only its
    groups' fields."""


def check_groups(translator: TranslatorOptions, images: ImageOptions) -> None:
    """The checks between groups: two resizes of one input."""
    if translator.size is not None and images.resize_shorter is not None:
        raise OptionError(
            "{size} and {resize_shorter} both resize the input; give one", "size", "resize_shorter"
        )


def group(options: Any, cls: type[Any]) -> Any:
    """The ``cls`` group of an object holding its fields (e.g. ``ConvertOptions``)."""
    return cls(**{f.name: getattr(options, f.name) for f in dataclasses.fields(cls)})


def split(values: Mapping[str, Any], cls: type[Any]) -> Any:
    """``cls`` built from the entries of ``values`` that are its fields."""
    return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values})


def recorded(options: Any, owner: Any = None) -> dict[str, Any]:
    """The manifest entries of a group: its recorded fields, resolved against ``owner``."""
    out = {}
    for f in dataclasses.fields(options):
        record = meta(f).record
        if callable(record):
            out[f.name] = record(options if owner is None else owner)
        elif record:
            out[f.name] = getattr(options, f.name)
    return out


def unrecorded(*groups: type[Any]) -> dict[str, Any]:
    """The recorded fields of ``groups`` that older manifests lack, and what they meant."""
    return {
        f.name: meta(f).unrecorded
        for cls in groups
        for f in dataclasses.fields(cls)
        if meta(f).record and meta(f).unrecorded is not None
    }


def pixel_options_set(options: Any, cls: type[Any]) -> list[str]:
    """The fields of group ``cls`` marked ``changes_pixels`` that ``options`` sets."""
    return [
        f.name
        for f in dataclasses.fields(cls)
        if meta(f).changes_pixels and getattr(options, f.name) != f.default
    ]


def click_options(
    *groups: type[Any],
    only: Collection[str] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click options of the groups' ``cli`` fields (those named in ``only``, if given),
    in field order; each is passed to the command as a keyword of the field's name.
    ``defaults``: a command's own default for a field (``evaluate`` scores in fp32)."""
    defaults = defaults or {}

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for cls in reversed(groups):
            hints = typing.get_type_hints(cls)
            for f in reversed(dataclasses.fields(cls)):
                if meta(f).cli and (only is None or f.name in only):
                    default = defaults.get(f.name, f.default)
                    command = _click_option(f, hints[f.name], default)(command)
        return command

    return decorate


def _click_option(f: dataclasses.Field[Any], hint: Any, default: Any) -> Callable[..., Any]:
    m = meta(f)
    name = flag(f.name)
    if hint in (bool, bool | None):
        if default is False:
            return click.option(name, f.name, is_flag=True, help=m.help)
        return click.option(
            f"{name}/--no-{name[2:]}",
            f.name,
            default=default,
            show_default=default is not None,
            help=m.help,
        )
    kind = m.check.click_type() if m.check is not None else _base_type(hint)
    return click.option(
        name,
        f.name,
        type=kind,
        default=default,
        show_default=default is not None,
        help=m.help,
    )


def _base_type(hint: Any) -> type:
    """``int`` for ``int | None`` and so on: the type a command-line value is read as."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def query_values(cls: type[Any], query: Mapping[str, str | None]) -> dict[str, Any]:
    """The ``serve`` fields of ``cls`` that ``query`` gives, typed and checked (an empty
    value or ``none`` is None where the field takes None); ``OptionError`` names the key."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        text = query.get(f.name)
        if not meta(f).serve or text is None:
            continue
        kind = _base_type(hints[f.name])
        if text in ("", "none") and kind is not str:
            out[f.name] = None
        elif kind is int:
            if not text.isdigit():
                problem = f"expected a whole number or none, got {text!r}"
                raise OptionError(f"{{{f.name}}}: {problem}", f.name)
            out[f.name] = int(text)
        else:
            out[f.name] = text
    return out
