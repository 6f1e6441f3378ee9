"""Find and load a model for inference: a generator file, a run directory, a training
checkpoint (``checkpoints/state_<step>.pt``), a bundled name, a pretrained reference
model's name (:mod:`translate.models.pretrained`) or a Hugging Face Hub repository
(``org/name[@revision]``, :mod:`translate.models.hub`).

A state dict (``.pth``/``.pt``/``.ckpt``) goes to :mod:`translate.models.reference`, which
infers a pix2pix/CycleGAN generator from the weights, then, if it is none, to
:mod:`translate.models.community` (spandrel's architectures: ESRGAN, SwinIR, ...), as
does a ``.safetensors`` file without translate's metadata.
"""

from __future__ import annotations

import os
import zipfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from translate.core.run_dir import RunDir
from translate.models.hub import hub_model_path, parse_repo_id
from translate.models.pretrained import PRETRAINED, pretrained_path

if TYPE_CHECKING:
    import torch

    from translate.models.model_file import LoadedModel

# Bundled model name -> file in translate/assets.
BUNDLED = {"demo": "demo.safetensors", "demo-sr": "demo-sr.safetensors"}
REFERENCE_SUFFIXES = (".pth", ".pt", ".ckpt")


def load_model(
    source: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    arch: str | None = None,
    norm: str | None = None,
) -> LoadedModel:
    """Load generators from a file, a run directory or a bundled model name, in eval mode.

    A state dict is tried as a reference pix2pix/CycleGAN generator first, then as a
    community checkpoint through spandrel (the ``spandrel`` extra); so is a safetensors
    file that is not a translate generator file. ``arch`` (a zoo name such as
    ``resnet_9blocks``) and ``norm`` override what is inferred from a reference checkpoint
    (and so skip spandrel); a generator file records its architecture, so they are refused
    there rather than silently ignored.
    """
    # Here, not above: the generator file's module imports torch, which `translate models`
    # (reading BUNDLED) and a path error do not need.
    from translate.models.model_file import (
        FORMAT,
        generators_from_checkpoint,
        is_generator_file,
        is_training_checkpoint,
        load_generators,
    )

    path = resolve_model_path(source)
    checkpoint = None
    if is_reference_checkpoint(path):
        from translate.models.reference import read_checkpoint

        checkpoint = read_checkpoint(path)
        if not is_training_checkpoint(checkpoint):
            return _load_state_dict(path, checkpoint, device, arch, norm)
    if arch is not None or norm is not None:
        raise ValueError(
            f"{path}: --arch/--norm only apply to reference checkpoints "
            f"({', '.join(REFERENCE_SUFFIXES)}); a translate model records its architecture"
        )
    if checkpoint is not None:
        return generators_from_checkpoint(path, checkpoint, device)
    if not is_generator_file(path):
        from translate.models.community import load_community, read_safetensors

        tried = f"not a translate generator file (no {FORMAT!r} metadata)"
        return load_community(path, read_safetensors(path), device, tried)
    return load_generators(path, device)


def _load_state_dict(
    path: Path, checkpoint: object, device: str | torch.device, arch: str | None, norm: str | None
) -> LoadedModel:
    """A reference generator, else (without ``arch``/``norm``) a community checkpoint."""
    from translate.models.community import load_community
    from translate.models.reference import load_reference

    try:
        return load_reference(path, device, arch, norm, checkpoint)
    except ValueError as exc:
        if arch is not None or norm is not None:
            raise
        reason = str(exc).removeprefix(f"{path}: ")
        tried = f"not a pix2pix/CycleGAN reference generator ({reason})"
        return load_community(path, checkpoint, device, tried)


def resolve_model_path(source: str | os.PathLike[str]) -> Path:
    """The file that ``source`` names: itself, a run directory's generator, a bundled file
    or a Hub repository's cached ``model.safetensors``.

    A bundled name wins over a same-named file or folder; ``./demo`` names the folder. An
    existing local path wins over a Hub repository of the same name (``org/name``).
    """
    if isinstance(source, str) and source in BUNDLED:
        return bundled_path(source)
    if isinstance(source, str) and source in PRETRAINED:  # fetched once into TRANSLATE_HOME
        return pretrained_path(source)
    path = Path(source)
    if path.is_dir():
        return run_model(path)
    if not path.exists():
        hub_model = parse_repo_id(source) if isinstance(source, str) else None
        if hub_model is not None:
            return hub_model_path(hub_model)
        if isinstance(source, str) and not path.suffix and len(path.parts) == 1:
            raise FileNotFoundError(
                f"{source!r} is neither a file, a directory nor a model name; "
                f"bundled models: {', '.join(sorted(BUNDLED))}; `translate models` lists all; "
                "a Hugging Face Hub model is org/name"
            )
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.suffix != ".safetensors" and not is_reference_checkpoint(path):
        raise ValueError(
            f"{path}: unknown model kind {path.suffix or '(no suffix)'!r}; expected a "
            f".safetensors file, a state dict ({', '.join(REFERENCE_SUFFIXES)}: a reference "
            "or community checkpoint), a run directory or a bundled model name"
        )
    return path


def is_reference_checkpoint(path: Path) -> bool:
    """A ``.pth``/``.pt`` file, or a file that ``torch.save`` wrote (a zip archive) under
    another name; a ``.safetensors`` name always means a generator file."""
    if path.suffix == ".safetensors":
        return False
    return path.suffix in REFERENCE_SUFFIXES or (path.is_file() and zipfile.is_zipfile(path))


def run_model(run_dir: Path) -> Path:
    """What a run directory as MODEL means: its generator file
    (:meth:`~translate.core.run_dir.RunDir.generator`), else, for a run stopped before its
    first evaluation wrote one, its newest training checkpoint (which holds the generators,
    their weight averages with ``train.ema``)."""
    run = RunDir(run_dir)
    try:
        return run.generator()
    except FileNotFoundError as exc:
        checkpoints = run.states()
        if not checkpoints:
            raise FileNotFoundError(f"{exc}, then checkpoints/state_<step>.pt") from None
        return checkpoints[-1]


def bundled_path(name: str) -> Path:
    """The installed file of a bundled model."""
    path = Path(str(resources.files("translate") / "assets" / BUNDLED[name]))
    if not path.is_file():
        raise FileNotFoundError(
            f"bundled model {name!r} is not installed (missing {path}); "
            "reinstall translate or pass a model file"
        )
    return path
