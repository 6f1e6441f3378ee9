"""The generator file: weights as safetensors, architecture and preprocessing in metadata.

One file holds every generator a model needs, keyed by direction (``AtoB``, and for
CycleGAN also ``BtoA``); tensors are stored as ``"<direction>.<state-dict key>"``. The
metadata is enough to rebuild the networks, so the converter needs nothing else.

Metadata versions: ``translate.generator/1`` stored ``preprocess`` as one flat dict of
``Preprocess`` fields plus channel counts; ``/2`` stores :class:`Preprocessing` as
``{"transforms": {...}, "input_channels": n, "output_channels": n}``. Both are read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .atomic import atomic_path
from .data.transforms import Preprocess
from .networks import build_generator

FORMAT_PREFIX = "translate.generator/"
VERSION = 2
FORMAT = f"{FORMAT_PREFIX}{VERSION}"
READABLE_VERSIONS = (1, 2)
DIRECTIONS = ("AtoB", "BtoA")
CHANNELS = ("input_channels", "output_channels")


@dataclass
class GeneratorSpec:
    """What ``build_generator`` needs: a zoo name, channel counts and options."""

    name: str
    in_channels: int = 3
    out_channels: int = 3
    options: dict[str, Any] = field(default_factory=dict)

    def build(self) -> nn.Module:
        return build_generator(self.name, self.in_channels, self.out_channels, **self.options)


@dataclass
class Preprocessing:
    """How a generator's inputs were prepared in training: the file's ``preprocess`` entry.

    ``transforms`` is the training data's resize/crop/flip (test-time readers such as
    ``translate evaluate`` apply it without the random parts); the channel counts are the
    dataset's input and output images (gray 1, RGB 3).
    """

    transforms: Preprocess = field(default_factory=lambda: Preprocess(mode="none"))
    input_channels: int = 3
    output_channels: int = 3

    def to_dict(self) -> dict[str, Any]:
        """The version-2 layout."""
        return {
            "transforms": self.transforms.to_dict(),
            "input_channels": self.input_channels,
            "output_channels": self.output_channels,
        }

    @classmethod
    def from_dict(cls, data: Any, version: int = VERSION) -> Preprocessing:
        """Read either layout; a bad value raises ``ValueError`` naming its field."""
        if not isinstance(data, dict):
            raise ValueError(f"preprocess: expected an object, got {type(data).__name__}")
        data = dict(data)
        channels = {}
        for name in CHANNELS:
            value = data.pop(name, 3)
            if isinstance(value, bool) or value not in (1, 3):
                raise ValueError(f"preprocess.{name}: expected 1 or 3, got {value!r}")
            channels[name] = value
        transforms = data if version == 1 else data.pop("transforms", {})
        if version > 1 and data:
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
class GeneratorFile:
    """Generators keyed by direction, plus how their inputs were preprocessed in training."""

    generators: dict[str, nn.Module]
    specs: dict[str, GeneratorSpec]
    preprocess: Preprocessing = field(default_factory=Preprocessing)
    training: dict[str, Any] = field(default_factory=dict)


@dataclass
class Metadata:
    """A generator file's decoded metadata: everything but the weights."""

    version: int
    specs: dict[str, GeneratorSpec]
    preprocess: Preprocessing
    training: dict[str, Any]


def save_generators(
    path: str | os.PathLike[str],
    generators: dict[str, tuple[GeneratorSpec, nn.Module]],
    preprocess: Preprocessing | None = None,
    training: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> None:
    """Write ``{direction: (spec, module)}`` atomically; ``dtype`` casts floats (fp16 demo)."""
    tensors: dict[str, torch.Tensor] = {}
    for direction, (_, module) in generators.items():
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}; got {direction!r}")
        module = getattr(module, "module", module)  # unwrap DDP
        for key, value in module.state_dict().items():
            value = value.detach().cpu()
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
            tensors[f"{direction}.{key}"] = value.contiguous()
    metadata = {
        "format": FORMAT,
        "generators": json.dumps({d: vars(spec) for d, (spec, _) in generators.items()}),
        "preprocess": json.dumps((preprocess or Preprocessing()).to_dict()),
        "training": json.dumps(training or {}),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def read_metadata(path: str | os.PathLike[str]) -> Metadata:
    """The decoded metadata of a generator file, without loading the weights."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc
    fmt = raw.get("format")
    if not isinstance(fmt, str) or not fmt.startswith(FORMAT_PREFIX):
        raise ValueError(f"{path}: not a translate generator file (no {FORMAT!r} metadata)")
    version = fmt[len(FORMAT_PREFIX) :]
    if not version.isdigit() or int(version) not in READABLE_VERSIONS:
        raise ValueError(
            f"{path}: format: {fmt!r} is not one this translate reads "
            f"({', '.join(FORMAT_PREFIX + str(v) for v in READABLE_VERSIONS)}); upgrade translate"
        )
    decoded = {key: json.loads(raw[key]) for key in ("generators", "preprocess", "training")}
    specs = {d: GeneratorSpec(**spec) for d, spec in decoded["generators"].items()}
    try:
        preprocess = Preprocessing.from_dict(decoded["preprocess"], int(version))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return Metadata(int(version), specs, preprocess, decoded["training"])


def load_generators(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> GeneratorFile:
    """Rebuild every generator in ``path`` in eval mode, in fp32 on ``device``."""
    path = Path(path)
    meta = read_metadata(path)
    tensors = load_file(str(path))
    generators = {}
    for direction, spec in meta.specs.items():
        net = spec.build()
        prefix = f"{direction}."
        state = {k[len(prefix) :]: v.float() for k, v in tensors.items() if k.startswith(prefix)}
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(
                f"{path}: weights for {direction} do not fit {spec.name}: {exc}"
            ) from exc
        generators[direction] = net.to(device).eval()
    return GeneratorFile(generators, meta.specs, meta.preprocess, meta.training)
