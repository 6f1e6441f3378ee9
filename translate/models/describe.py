"""What ``translate info`` prints about a model, and that description read from a generator
file's header alone.

A generator file stores its generators' ``counts`` (parameters and MACs, written by
:func:`translate.models.model_file.save_generators`), so it is described from its metadata,
without torch and without building its networks, and ``translate info`` answers at once; any
other model, or a file whose header this does not read, goes the full way (load it, count
the networks), which also names what is wrong with a malformed file.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

from translate.data.transforms import UNCROPPED_MODES, Preprocess
from translate.models.loading import resolve_model_path

# Generators and their exports map [-1, 1] NCHW float tensors to the same: what callers feed.
TENSOR_CONTRACT = "N x C x H x W float32 in [-1, 1], any H and W (padded inside)"
# The formats whose generators/preprocess layout describe_file reads (translate.models.model_file's
# versions 2 and 3); a file in any other goes the full way.
HEADER_LAYOUTS = ("translate.generator/2", "translate.generator/3")
# safetensors' own bound on the header, so a corrupt length is not read as gigabytes.
MAX_HEADER_BYTES = 100_000_000


def describe(
    source: str | os.PathLike[str],
    specs: dict[str, dict[str, Any]],
    counts: dict[str, dict[str, Any]],
    preprocess: dict[str, Any],
    training: dict[str, Any],
    eval_mode: dict[str, Any],
) -> dict[str, Any]:
    """The description of a model from its metadata as a generator file stores it: each
    direction's spec (``GeneratorSpec`` fields) and counts (``parameters``, ``gmac``,
    ``gmac_at``), the preprocessing (``InputSpec.to_dict()``), training summary and test
    mode."""
    generators = {}
    for direction, spec in specs.items():
        count = counts[direction]
        generators[direction] = {
            "architecture": spec["name"],
            "options": spec["options"],
            "parameters": count["parameters"],
            "gmac": count["gmac"],
            "gmac_at": count["gmac_at"],
            "input": {
                "channels": spec["in_channels"],
                "size_multiple": spec["size_multiple"],
                "tensor": TENSOR_CONTRACT,
            },
            "output_channels": spec["out_channels"],
            "output_scale": spec["scale"],
        }
    transforms = Preprocess.from_dict(preprocess["transforms"])
    return {
        "source": str(source),
        "generators": generators,
        "preprocess": {**preprocess, "native_size": _native_size(transforms)},
        "training": training,
        "eval_mode": eval_mode,
    }


def describe_file(source: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The description of the generator file ``source`` names (a path or a bundled name)
    from its header, or ``None`` where the header does not hold all of it: not a
    safetensors file, another format, or anything missing or malformed, which the full way
    reports."""
    path = resolve_model_path(source)
    if path.suffix != ".safetensors":
        return None
    try:
        metadata = read_safetensors_metadata(path)
        if metadata.get("format") not in HEADER_LAYOUTS:
            return None
        specs, counts, preprocess, training, eval_mode = (
            json.loads(metadata[key])
            for key in ("generators", "counts", "preprocess", "training", "eval_mode")
        )
        if set(counts) != set(specs):
            return None
        return describe(source, specs, counts, preprocess, training, eval_mode)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, struct.error):
        return None  # the full way names the fault in one line


def read_safetensors_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """A safetensors file's ``__metadata__`` (its header: an 8-byte little-endian length,
    then that many bytes of JSON), read without torch or safetensors; ``ValueError`` where
    the header is not one."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        if size > MAX_HEADER_BYTES:
            raise ValueError(f"{path}: a {size}-byte safetensors header is not plausible")
        header = json.loads(f.read(size))
    metadata = header.get("__metadata__", {}) if isinstance(header, dict) else None
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: the safetensors header holds no metadata object")
    return metadata


def _native_size(transforms: Preprocess) -> str:
    """The image size the generator saw in training, in words."""
    if transforms.mode not in UNCROPPED_MODES:
        size = transforms.crop_size
        return f"trained on {size}x{size} crops; any size runs (padded to the size multiple)"
    if transforms.mode == "scale_width":
        return f"trained at width {transforms.load_size}; any size runs"
    return "any size (padded to the size multiple)"
