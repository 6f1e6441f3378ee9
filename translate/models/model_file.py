"""The generator file: weights as safetensors, architecture and preprocessing in metadata.

One file holds every generator a model needs, keyed by direction (``AtoB``, and for
CycleGAN also ``BtoA``); tensors are stored as ``"<direction>.<state-dict key>"``. The
metadata is enough to rebuild the networks, so the converter needs nothing else.

Metadata versions: ``translate.generator/2`` stores :class:`InputSpec` as
``{"transforms": {...}, "input_channels": n, "output_channels": n}``. The
``eval_mode`` entry (``{"norm_stats": "running"|"batch", "dropout": bool}``, what validation
scored best) sets how inference normalises by default. Each ``generators`` entry carries
the network's declared geometry (``scale``, ``input_kind``, ``size_multiple``). The
``counts`` entry holds each generator's ``parameters``, ``gmac`` and ``gmac_at``, so
``translate info`` need not build the networks (:func:`generator_counts`). A file lacking
any of these is refused, naming the missing key.

``/3`` is ``/2`` with the tensors under their own state-dict keys, no direction prefix: it
is written for a file holding one generator whose class keeps an upstream project's key
layout (``Generator.upstream_layout``, the Real-ESRGAN networks), so tools that read plain
state dicts (spandrel, and through it chaiNNer and ComfyUI) load it. Every other file is
still ``/2``.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zipfile
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from translate.core.atomic import atomic_write_bytes
from translate.core.choices import DIRECTIONS
from translate.data.transforms import UNCROPPED_MODES, Preprocess
from translate.networks import GENERATORS, build_generator, count_macs, count_parameters
from translate.networks.eval_mode import EvalMode

FORMAT_PREFIX = "translate.generator/"
VERSION = 2
FORMAT = f"{FORMAT_PREFIX}{VERSION}"
# One generator under its plain state-dict keys (see the module docstring).
UNPREFIXED_VERSION = 3
READABLE_VERSIONS = (2, 3)
# Where a training checkpoint keeps what inference needs to take its generators out.
CHECKPOINT_KEY = "generator_file"
CHANNELS = ("input_channels", "output_channels")
# What an input holds: pixel values, or a label map of class indices (one channel each).
INPUT_KINDS = ("image", "labels")


def declared_geometry(module: nn.Module) -> dict[str, Any]:
    """The geometry a generator class declares as attributes (as spandrel's descriptors do):
    ``scale`` (output side / input side), ``input_kind`` and ``size_multiple`` (what its
    input sides must divide by)."""
    return {
        "scale": int(getattr(module, "scale", 1)),
        "input_kind": str(getattr(module, "input_kind", "image")),
        "size_multiple": int(getattr(module, "size_multiple", 1)),
    }


@dataclass
class GeneratorSpec:
    """What ``build_generator`` needs (a zoo name, channel counts and options), and the
    geometry the built network declares, so readers of the file need not build it: the
    output's sides are ``scale`` times the input's, and the input's sides are padded to a
    multiple of ``size_multiple``. ``size_multiple=None`` (a spec written by hand) is the
    class's: :meth:`resolved` fills it in, as every :class:`LoadedModel` and every
    file written does."""

    name: str
    in_channels: int = 3
    out_channels: int = 3
    options: dict[str, Any] = field(default_factory=dict)
    scale: int = 1
    input_kind: str = "image"
    # Not compared: None (the class's) and the class's value describe the same network.
    size_multiple: int | None = field(default=None, compare=False)

    @classmethod
    def declared(
        cls, name: str, in_channels: int, out_channels: int, options: dict[str, Any]
    ) -> GeneratorSpec:
        """The spec of a zoo network, its geometry read from the network (built on the meta
        device: no memory)."""
        with torch.device("meta"):
            module = build_generator(name, in_channels, out_channels, **options)
        return cls(name, in_channels, out_channels, dict(options), **declared_geometry(module))

    def build(self) -> nn.Module:
        """The network; ``ValueError`` where its declared geometry is not the spec's (a file
        written for another version of the class)."""
        module = build_generator(self.name, self.in_channels, self.out_channels, **self.options)
        self.check_geometry(module)
        return module

    def check_geometry(self, module: nn.Module) -> None:
        """``ValueError`` naming the first key where ``module`` declares another geometry."""
        for key, value in declared_geometry(module).items():
            if getattr(self, key) not in (None, value):
                raise ValueError(
                    f"{key}: the file says {getattr(self, key)!r}, {self.name} declares {value!r}"
                )

    def resolved(self, module: nn.Module) -> GeneratorSpec:
        """This spec with ``size_multiple`` filled in from ``module`` (its built network)
        where it is ``None``."""
        if self.size_multiple is not None:
            return self
        return replace(self, size_multiple=declared_geometry(module)["size_multiple"])


@dataclass
class InputSpec:
    """How a generator's inputs were prepared in training: the file's ``preprocess`` entry.

    ``transforms`` is the training data's resize/crop/flip (test-time readers such as
    ``translate evaluate`` apply it without the random parts); the channel counts are the
    dataset's input and output images (gray 1, RGB 3, with alpha 2 and 4, or any count).
    """

    transforms: Preprocess = field(default_factory=lambda: Preprocess(mode="none"))
    input_channels: int = 3
    output_channels: int = 3

    def to_dict(self) -> dict[str, Any]:
        """The metadata's ``preprocess`` entry."""
        return {
            "transforms": self.transforms.to_dict(),
            "input_channels": self.input_channels,
            "output_channels": self.output_channels,
        }

    @classmethod
    def from_dict(cls, data: Any) -> InputSpec:
        """Read :meth:`to_dict`'s layout; a bad value raises ``ValueError`` naming its field."""
        if not isinstance(data, dict):
            raise ValueError(f"preprocess: expected an object, got {type(data).__name__}")
        data = dict(data)
        channels = {}
        for name in CHANNELS:
            value = data.pop(name, 3)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"preprocess.{name}: expected a positive integer, got {value!r}")
            channels[name] = value
        transforms = data.pop("transforms", {})
        if data:
            raise ValueError(f"preprocess: unknown key(s) {sorted(data)}")
        if not isinstance(transforms, dict):
            raise ValueError(
                f"preprocess.transforms: expected an object, got {type(transforms).__name__}"
            )
        try:
            return cls(Preprocess.from_dict(transforms), **channels)
        except TypeError as exc:  # a value of the wrong type deep in Preprocess
            raise ValueError(f"preprocess: {exc}") from exc


@dataclass
class LoadedModel:
    """Generators keyed by direction, plus how their inputs were preprocessed in training.
    Each spec's ``size_multiple`` is resolved from its generator, so inference reads it from
    the spec alone."""

    generators: dict[str, nn.Module]
    specs: dict[str, GeneratorSpec]
    preprocess: InputSpec = field(default_factory=InputSpec)
    training: dict[str, Any] = field(default_factory=dict)
    eval_mode: EvalMode = field(default_factory=EvalMode)

    def __post_init__(self) -> None:
        self.specs = {
            d: spec.resolved(self.generators[d]) if d in self.generators else spec
            for d, spec in self.specs.items()
        }


@dataclass
class Metadata:
    """A generator file's decoded metadata: everything but the weights."""

    version: int
    specs: dict[str, GeneratorSpec]
    preprocess: InputSpec
    training: dict[str, Any]
    eval_mode: EvalMode


def save_generators(
    path: str | os.PathLike[str],
    generators: dict[str, tuple[GeneratorSpec, nn.Module]],
    preprocess: InputSpec | None = None,
    training: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
    eval_mode: EvalMode | None = None,
) -> None:
    """Write ``{direction: (spec, module)}`` atomically; ``dtype`` casts floats (fp16 demo);
    ``eval_mode`` is how inference normalises by default (running statistics unless given)."""
    metadata = encode_metadata(generators, preprocess, training, eval_mode)
    transforms = (preprocess or InputSpec()).transforms
    counts = {d: generator_counts(spec, m, transforms) for d, (spec, m) in generators.items()}
    metadata["counts"] = json.dumps(counts, sort_keys=True)
    unprefixed = _version(generators) == UNPREFIXED_VERSION
    tensors: dict[str, torch.Tensor] = {}
    for direction, (_, module) in generators.items():
        prefix = "" if unprefixed else f"{direction}."
        for key, value in module.state_dict().items():
            value = value.detach().cpu()
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
            tensors[prefix + key] = value.contiguous()
    # Encoded in memory, then written by atomic_write_bytes: safetensors' save_file
    # truncates silently on a full disk, this raises ENOSPC and leaves nothing.
    atomic_write_bytes(path, _sorted_metadata(safetensors_bytes(tensors, metadata=metadata)))


def _sorted_metadata(data: bytes) -> bytes:
    """``data``, a safetensors file, with its metadata's keys sorted: safetensors writes them
    from a Rust hash map, in an order that changes with each save, and identical models
    should be identical files. The tensors' entries and bytes are kept as written."""
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    header = {"__metadata__": header.pop("__metadata__"), **header}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as safetensors pads it
    return struct.pack("<Q", len(text)) + text + data[8 + length :]


def generator_counts(
    spec: GeneratorSpec, module: nn.Module, transforms: Preprocess
) -> dict[str, Any]:
    """What ``translate info`` quotes of a generator: its ``parameters`` (buffers excluded)
    and ``gmac`` (multiply-accumulates, in billions) on one input of side ``gmac_at``: the
    training crop (or scaled width), else 256 as in the papers, rounded up to the size
    multiple the network pads to."""
    multiple = spec.resolved(module).size_multiple
    if transforms.mode not in UNCROPPED_MODES:
        side = transforms.crop_size
    elif transforms.mode == "scale_width":
        side = transforms.load_size
    else:
        side = 256
    side = multiple * math.ceil(side / multiple)
    return {
        "parameters": count_parameters(module),
        "gmac": round(count_macs(module, (spec.in_channels, side, side)) / 1e9, 3),
        "gmac_at": f"{side}x{side}",
    }


def _version(generators: dict[str, tuple[GeneratorSpec, nn.Module]]) -> int:
    """The format a file of ``generators`` is written in: unprefixed for one generator in an
    upstream layout, so other tools read it as it is."""
    modules = [module for _, module in generators.values()]
    if len(modules) == 1 and getattr(modules[0], "upstream_layout", False):
        return UNPREFIXED_VERSION
    return VERSION


def encode_metadata(
    generators: dict[str, tuple[GeneratorSpec, nn.Module]],
    preprocess: InputSpec | None = None,
    training: dict[str, Any] | None = None,
    eval_mode: EvalMode | None = None,
) -> dict[str, str]:
    """The metadata a generator file carries (also kept in training checkpoints)."""
    for direction in generators:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}; got {direction!r}")
    return {
        "format": f"{FORMAT_PREFIX}{_version(generators)}",
        "generators": json.dumps(
            {d: vars(spec.resolved(module)) for d, (spec, module) in generators.items()}
        ),
        "preprocess": json.dumps((preprocess or InputSpec()).to_dict()),
        "training": json.dumps(training or {}),
        "eval_mode": json.dumps(vars(eval_mode or EvalMode())),
    }


def checkpoint_entry(
    generators: dict[str, tuple[GeneratorSpec, nn.Module]],
    preprocess: InputSpec | None = None,
    training: dict[str, Any] | None = None,
    eval_mode: EvalMode | None = None,
    weights: dict[str, dict[str, torch.Tensor]] | None = None,
) -> dict[str, Any]:
    """What a training checkpoint carries under ``CHECKPOINT_KEY``, all that
    :func:`generators_from_checkpoint` reads: the generator file's metadata and each
    generator's state dict (``weights``).

    ``weights`` replaces the modules' own state dicts: with ``train.ema``, the weight
    averages, as the run's generator files hold. Either way the tensors are those the
    checkpoint's other entries hold, and ``torch.save`` writes a storage once, so the entry
    adds no weights to the file."""
    if weights is None:
        weights = {direction: module.state_dict() for direction, (_, module) in generators.items()}
    metadata = encode_metadata(generators, preprocess, training, eval_mode)
    return {"metadata": metadata, "weights": {d: dict(weights[d]) for d in generators}}


def is_training_checkpoint(state: Any) -> bool:
    """A ``torch.load``ed object that :func:`generators_from_checkpoint` can read."""
    return isinstance(state, dict) and CHECKPOINT_KEY in state


def generators_from_checkpoint(
    path: str | os.PathLike[str], state: dict[str, Any], device: str | torch.device = "cpu"
) -> LoadedModel:
    """The generators of a training checkpoint (``checkpoints/state_<step>.pt``)."""
    entry = state[CHECKPOINT_KEY]
    try:
        meta = _parse(entry["metadata"])
        weights = entry["weights"]
        tensors = {
            f"{direction}.{key}": value
            for direction in meta.specs
            for key, value in weights[direction].items()
        }
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: {CHECKPOINT_KEY}: malformed ({exc!r})") from None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    check_weights(path, meta.specs, {k: list(v.shape) for k, v in tensors.items()})
    training = {**meta.training, "checkpoint": str(path)}
    return _build(meta, tensors, device, training)


def read_metadata(path: str | os.PathLike[str]) -> Metadata:
    """The decoded metadata of a generator file, without loading the weights.

    Anything malformed or missing raises ``ValueError`` in one line naming the file and the
    field.
    """
    return _read_file(path)[0]


def _read_file(path: str | os.PathLike[str]) -> tuple[Metadata, dict[str, list[int]]]:
    """A generator file's metadata (every entry ``save_generators`` writes is required)
    and each tensor's shape."""
    raw, shapes = _read_header(path)
    try:
        if "counts" not in raw:
            raise ValueError("counts: missing from the metadata")
        return _parse(raw), shapes
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def is_generator_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a safetensors file carrying translate's metadata; a readable
    safetensors file without it holds someone else's weights (a community checkpoint)."""
    try:
        raw, _ = _read_header(path)
    except ValueError:
        return True  # unreadable: load_generators names the fault
    fmt = raw.get("format")
    return isinstance(fmt, str) and fmt.startswith(FORMAT_PREFIX)


def _read_header(path: str | os.PathLike[str]) -> tuple[dict[str, str], dict[str, list[int]]]:
    """The raw metadata and each tensor's shape: the file's header, no weights read."""
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {key: f.get_slice(key).get_shape() for key in f.keys()}  # noqa: SIM118
            return f.metadata() or {}, shapes
    except (SafetensorError, OSError) as exc:
        hint = ""
        if zipfile.is_zipfile(path):
            hint = "; it is a zip archive as torch.save writes (a .pt/.pth checkpoint?)"
        raise ValueError(f"{path}: not a readable safetensors file ({exc}){hint}") from exc


def _parse(raw: dict[str, str]) -> Metadata:
    """The metadata a file or a checkpoint entry carries (a checkpoint's has no ``counts``)."""
    fmt = raw.get("format")
    if not isinstance(fmt, str) or not fmt.startswith(FORMAT_PREFIX):
        raise ValueError(f"not a translate generator file (no {FORMAT!r} metadata)")
    version = fmt[len(FORMAT_PREFIX) :]
    if not version.isdigit() or int(version) not in READABLE_VERSIONS:
        raise ValueError(
            f"format: {fmt!r} is not one this translate reads "
            f"({', '.join(FORMAT_PREFIX + str(v) for v in READABLE_VERSIONS)}); upgrade translate"
        )
    decoded = {}
    for key in ("generators", "preprocess", "training", "eval_mode"):
        if key not in raw:
            raise ValueError(f"{key}: missing from the metadata")
        decoded[key] = _json(key, raw[key])
    if not isinstance(decoded["training"], dict):
        raise ValueError(f"training: expected an object, got {type(decoded['training']).__name__}")
    specs = _specs(decoded["generators"])
    if int(version) == UNPREFIXED_VERSION and len(specs) != 1:
        raise ValueError(f"generators: {fmt} holds one generator, the metadata names {len(specs)}")
    return Metadata(
        int(version),
        specs,
        InputSpec.from_dict(decoded["preprocess"]),
        decoded["training"],
        _eval_mode(decoded["eval_mode"]),
    )


def _json(key: str, text: str) -> Any:
    """The metadata entry ``key`` decoded; nesting too deep for Python's parser is refused
    as malformed, not raised as a RecursionError."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{key}: not valid JSON ({exc})") from None
    except RecursionError:
        raise ValueError(f"{key}: JSON nested too deeply to be metadata") from None


def _eval_mode(data: Any) -> EvalMode:
    if not isinstance(data, dict) or set(data) - {"norm_stats", "dropout"}:
        raise ValueError(f"eval_mode: expected {{norm_stats, dropout}}, got {data!r:.60}")
    try:
        return EvalMode(**data)
    except ValueError as exc:
        raise ValueError(f"eval_mode.{exc}") from None


def _specs(generators: Any) -> dict[str, GeneratorSpec]:
    """``{direction: GeneratorSpec}`` from the ``generators`` entry, checked field by field."""
    if not isinstance(generators, dict) or not generators:
        raise ValueError(
            f"generators: expected an object of direction -> generator, got {generators!r:.60}"
        )
    specs = {}
    for direction, entry in generators.items():
        where = f"generators.{direction}"
        if direction not in DIRECTIONS:
            raise ValueError(f"{where}: unknown direction; expected {' or '.join(DIRECTIONS)}")
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ValueError(f"{where}: expected an object with a 'name', got {entry!r:.60}")
        keys = {f.name for f in fields(GeneratorSpec)}
        unknown, missing = sorted(set(entry) - keys), sorted(keys - set(entry))
        if unknown or missing:
            what = f"unknown key(s) {unknown}" if unknown else f"missing key(s) {missing}"
            raise ValueError(f"{where}: {what}")
        spec = GeneratorSpec(**entry)
        for name in ("in_channels", "out_channels", "scale", "size_multiple"):
            value = getattr(spec, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{where}.{name}: expected a positive integer, got {value!r}")
        if spec.input_kind not in INPUT_KINDS:
            raise ValueError(
                f"{where}.input_kind: expected {' or '.join(INPUT_KINDS)}, got {spec.input_kind!r}"
            )
        if not isinstance(spec.options, dict):
            raise ValueError(f"{where}.options: expected an object, got {spec.options!r:.60}")
        try:
            GENERATORS.check_options(spec.name, spec.options)
        except ValueError as exc:
            field_name = "name" if spec.name not in GENERATORS.names() else "options"
            raise ValueError(f"{where}.{field_name}: {exc}") from None
        specs[direction] = spec
    return specs


def check_weights(
    path: str | os.PathLike[str], specs: dict[str, GeneratorSpec], shapes: dict[str, list[int]]
) -> None:
    """Check that each spec's tensors are exactly the file's (``{"<direction>.<key>": shape}``,
    from a safetensors header: no weights read).

    The networks are built on the meta device (no memory), so metadata that asks for a
    huge network (``ngf: 4000`` beside a few small tensors) is refused before anything is
    allocated: a network that passes holds no more than the file does.
    """
    for direction, spec in specs.items():
        where = f"{path}: generators.{direction}"
        try:
            with torch.device("meta"):
                module = build_generator(
                    spec.name, spec.in_channels, spec.out_channels, **spec.options
                )
        except Exception as exc:  # any builder error: the metadata is what is wrong
            raise ValueError(f"{where}: cannot build {spec.name} {spec.options}: {exc}") from exc
        expected = {k: list(v.shape) for k, v in module.state_dict().items()}
        prefix = f"{direction}."
        found = {k[len(prefix) :]: v for k, v in shapes.items() if k.startswith(prefix)}
        head = f"{where}: the metadata ({spec.name} {spec.options}) does not fit the weights"
        for key, shape in expected.items():
            if key not in found:
                raise ValueError(f"{head}: the file has no {prefix}{key} {tuple(shape)}")
            if found[key] != shape:
                raise ValueError(
                    f"{head}: {prefix}{key} is {tuple(found[key])} in the file, "
                    f"{tuple(shape)} expected"
                )
        extra = sorted(set(found) - set(expected))
        if extra:
            raise ValueError(f"{head}: {prefix}{extra[0]} is not part of that network")
        try:  # weights that fit, from another version of the class
            spec.check_geometry(module)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None


def load_generators(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> LoadedModel:
    """Rebuild every generator in ``path`` in eval mode, in fp32 on ``device``."""
    meta, shapes = _read_file(path)
    check_weights(path, meta.specs, _with_directions(meta, shapes))
    return _build(meta, _with_directions(meta, load_file(str(path))), device, meta.training)


def _with_directions(meta: Metadata, tensors: dict[str, Any]) -> dict[str, Any]:
    """A file's ``{key: value}`` as ``{"<direction>.<key>": value}``, the form the loaders
    take: version 3 stores its one generator without the prefix."""
    if meta.version != UNPREFIXED_VERSION:
        return tensors
    (direction,) = meta.specs
    return {f"{direction}.{key}": value for key, value in tensors.items()}


def _build(
    meta: Metadata,
    tensors: dict[str, torch.Tensor],
    device: str | torch.device,
    training: dict[str, Any],
) -> LoadedModel:
    """The generators of ``meta`` holding ``tensors`` (``"<direction>.<key>"``, checked by
    :func:`check_weights`), in eval mode, in fp32 on ``device``."""
    generators = {}
    for direction, spec in meta.specs.items():
        net = spec.build()
        prefix = f"{direction}."
        state = {k[len(prefix) :]: v.float() for k, v in tensors.items() if k.startswith(prefix)}
        net.load_state_dict(state)
        generators[direction] = net.to(device).eval()
    return LoadedModel(generators, meta.specs, meta.preprocess, training, meta.eval_mode)
