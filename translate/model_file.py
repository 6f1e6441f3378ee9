"""The generator file: weights as safetensors, architecture and preprocessing in metadata.

One file holds every generator a model needs, keyed by direction (``AtoB``, and for
CycleGAN also ``BtoA``); tensors are stored as ``"<direction>.<state-dict key>"``. The
metadata is enough to rebuild the networks, so the converter needs nothing else.
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
from .networks import build_generator

FORMAT = "translate.generator/1"
DIRECTIONS = ("AtoB", "BtoA")


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
class GeneratorFile:
    """Generators keyed by direction, plus how their inputs were preprocessed in training."""

    generators: dict[str, nn.Module]
    specs: dict[str, GeneratorSpec]
    preprocess: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)


def save_generators(
    path: str | os.PathLike[str],
    generators: dict[str, tuple[GeneratorSpec, nn.Module]],
    preprocess: dict[str, Any] | None = None,
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
        "preprocess": json.dumps(preprocess or {}),
        "training": json.dumps(training or {}),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The decoded metadata of a generator file, without loading the weights."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc
    if raw.get("format") != FORMAT:
        raise ValueError(f"{path}: not a translate generator file (no {FORMAT!r} metadata)")
    return {key: json.loads(raw[key]) for key in ("generators", "preprocess", "training")}


def load_generators(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> GeneratorFile:
    """Rebuild every generator in ``path`` in eval mode, in fp32 on ``device``."""
    path = Path(path)
    meta = read_metadata(path)
    tensors = load_file(str(path))
    generators, specs = {}, {}
    for direction, spec_dict in meta["generators"].items():
        spec = GeneratorSpec(**spec_dict)
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
        specs[direction] = spec
    return GeneratorFile(generators, specs, meta["preprocess"], meta["training"])
