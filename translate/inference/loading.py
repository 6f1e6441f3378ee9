"""Find and load a model for inference: a generator file, a run directory, a training
checkpoint (``checkpoints/state_<step>.pt``), a bundled name or a pretrained reference
model's name (:mod:`translate.inference.pretrained`).

Reference checkpoints (``.pth``/``.pt``) go to :mod:`translate.inference.reference`, which
infers their architecture from the weights.
"""

from __future__ import annotations

import os
import zipfile
from importlib import resources
from pathlib import Path

import torch

from ..model_file import (
    GeneratorFile,
    generators_from_checkpoint,
    is_training_checkpoint,
    load_generators,
)
from .pretrained import PRETRAINED, pretrained_path

# Bundled model name -> file in translate/assets.
BUNDLED = {"demo": "demo.safetensors", "demo-sr": "demo-sr.safetensors"}
# What a run directory is searched for, in order of preference.
RUN_GENERATORS = ("generator_best.safetensors", "generator_latest.safetensors")
REFERENCE_SUFFIXES = (".pth", ".pt")


def load_model(
    source: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    arch: str | None = None,
    norm: str | None = None,
) -> GeneratorFile:
    """Load generators from a file, a run directory or a bundled model name, in eval mode.

    ``arch`` (a zoo name such as ``resnet_9blocks``) and ``norm`` override what is inferred
    from a reference checkpoint; a generator file records its architecture, so they are
    refused there rather than silently ignored.
    """
    path = resolve_model_path(source)
    checkpoint = None
    if is_reference_checkpoint(path):
        from .reference import load_reference, read_checkpoint

        checkpoint = read_checkpoint(path)
        if not is_training_checkpoint(checkpoint):
            return load_reference(path, device, arch, norm, checkpoint)
    if arch is not None or norm is not None:
        raise ValueError(
            f"{path}: --arch/--norm only apply to reference checkpoints "
            f"({', '.join(REFERENCE_SUFFIXES)}); a translate model records its architecture"
        )
    if checkpoint is not None:
        return generators_from_checkpoint(path, checkpoint, device)
    return load_generators(path, device)


def resolve_model_path(source: str | os.PathLike[str]) -> Path:
    """The file that ``source`` names: itself, a run directory's generator or a bundled file.

    A bundled name wins over a same-named file or folder; ``./demo`` names the folder.
    """
    if isinstance(source, str) and source in BUNDLED:
        return bundled_path(source)
    if isinstance(source, str) and source in PRETRAINED:  # fetched once into TRANSLATE_HOME
        return pretrained_path(source)
    path = Path(source)
    if path.is_dir():
        return run_generator(path)
    if not path.exists():
        if isinstance(source, str) and not path.suffix and len(path.parts) == 1:
            raise FileNotFoundError(
                f"{source!r} is neither a file, a directory nor a model name; "
                f"bundled models: {', '.join(sorted(BUNDLED))}; `translate models` lists all"
            )
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.suffix != ".safetensors" and not is_reference_checkpoint(path):
        raise ValueError(
            f"{path}: unknown model kind {path.suffix or '(no suffix)'!r}; expected a "
            f".safetensors generator file, a reference checkpoint "
            f"({', '.join(REFERENCE_SUFFIXES)}), a run directory or a bundled model name"
        )
    return path


def is_reference_checkpoint(path: Path) -> bool:
    """A ``.pth``/``.pt`` file, or a file that ``torch.save`` wrote (a zip archive) under
    another name; a ``.safetensors`` name always means a generator file."""
    if path.suffix == ".safetensors":
        return False
    return path.suffix in REFERENCE_SUFFIXES or (path.is_file() and zipfile.is_zipfile(path))


def run_generator(run_dir: Path) -> Path:
    """A run directory's best generator, else its latest."""
    for name in RUN_GENERATORS:
        candidate = run_dir / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{run_dir}: a directory without a generator; looked for {' and '.join(RUN_GENERATORS)}"
    )


def bundled_path(name: str) -> Path:
    """The installed file of a bundled model."""
    path = Path(str(resources.files("translate") / "assets" / BUNDLED[name]))
    if not path.is_file():
        raise FileNotFoundError(
            f"bundled model {name!r} is not installed (missing {path}); "
            "reinstall translate or pass a model file"
        )
    return path
