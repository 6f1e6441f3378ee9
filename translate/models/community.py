"""Community checkpoints (ESRGAN, Real-ESRGAN, SwinIR, DnCNN, ...) through spandrel.

spandrel (the ``spandrel`` extra) infers an upscaler's or restorer's architecture from its
state dict. The file is never handed to spandrel's own loader: a ``.pth``/``.pt``/``.ckpt``
is read by :func:`translate.core.torch_file.load` (no pickled code runs, sizes and free memory
checked first) and a ``.safetensors`` by safetensors after the same memory check; spandrel
only sees the tensors.

Architectures spandrel keeps in ``spandrel_extra_arches`` because of their restrictive
(non-commercial) licences load only with that package (the ``spandrel_extra`` extra) *and*
``TRANSLATE_SPANDREL_EXTRA_ARCHES=1`` in the environment, as ComfyUI keeps them opt-in.

The loaded network is wrapped as a zoo :class:`~translate.networks.features.Generator` on
[-1, 1] tensors whose declared geometry (``scale``, ``size_multiple``, ``precisions``) is
spandrel's, so padding, tiles, memory budgets, video, serve and evaluate run it unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from translate.core import torch_file
from translate.core.extras import needs_extra
from translate.data.transforms import Preprocess
from translate.models.model_file import GeneratorSpec, InputSpec, LoadedModel
from translate.networks.features import Generator

EXTRA = "spandrel"
RESTRICTED_EXTRA = "spandrel_extra"
OPT_IN = "TRANSLATE_SPANDREL_EXTRA_ARCHES"
# Where the name of an architecture spandrel reports goes in GeneratorSpec.name.
NAME_PREFIX = "spandrel:"


class SpandrelGenerator(Generator):
    """A spandrel model on translate's [-1, 1] NCHW tensors.

    Each image goes through spandrel's own call (``descriptor(image)``: its padding to the
    size requirements, the architecture's call, the clamp to [0, 1]) one at a time, since
    some architectures' calls build per-image inputs (FDnCNN's noise map) for a batch of 1;
    an ONNX export traces the batch in one call, and checks it against this loop.
    """

    input_kind = "image"

    def __init__(self, descriptor: Any) -> None:
        super().__init__()
        self.descriptor = descriptor
        self.net = descriptor.model  # registered, so .to(), .eval() and parameters reach it
        self.scale = int(descriptor.scale)
        self.size_multiple = int(descriptor.size_requirements.multiple_of)
        self.precisions = precisions(descriptor)

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():  # an ONNX export: one graph for any batch size
            return self.descriptor((x + 1) / 2) * 2 - 1
        images = [self.descriptor((image[None] + 1) / 2) for image in x]
        return torch.cat(images) * 2 - 1


def precisions(descriptor: Any) -> tuple[str, ...]:
    """The inference precisions spandrel says the model runs in."""
    return (
        ("fp32",)
        + (("bf16",) if descriptor.supports_bfloat16 else ())
        + (("fp16",) if descriptor.supports_half else ())
    )


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors, after checking they fit in free memory (``torch.save``
    files are read by :func:`translate.core.torch_file.load`, via the reference importer)."""
    torch_file.check_free(path, path.stat().st_size)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc


def load_community(
    path: str | os.PathLike[str],
    checkpoint: Any,
    device: str | torch.device = "cpu",
    tried: str = "",
) -> LoadedModel:
    """``checkpoint`` (``path``'s content, read safely) as a one-direction
    (``AtoB``) model, if spandrel recognises its architecture.

    ``tried`` names what was tried before spandrel, for the error when it fails too.
    """
    path = Path(path)
    before = f"{tried}; " if tried else ""
    with needs_extra(EXTRA, f"{path}: {before}loading it as a community checkpoint"):
        import spandrel
    state = spandrel.canonicalize_state_dict(checkpoint) if isinstance(checkpoint, dict) else None
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: {before}not a state dict spandrel can read either")
    support, registry = _detect(state)
    if support is None:
        raise ValueError(f"{path}: {before}{_unrecognised(state)}")
    try:
        descriptor = support.architecture.load(state)
    except Exception as exc:  # spandrel raises anything from KeyError to AssertionError
        raise ValueError(
            f"{path}: spandrel detects {support.architecture.name} but cannot build it "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise ValueError(
            f"{path}: a {descriptor.purpose} model ({support.architecture.name}) takes a mask "
            "besides the image; translate runs image-to-image models only"
        )
    net = SpandrelGenerator(descriptor).to(device).eval()
    spec = GeneratorSpec(
        NAME_PREFIX + str(support.architecture.id),
        descriptor.input_channels,
        descriptor.output_channels,
        {},
        scale=net.scale,
        size_multiple=net.size_multiple,
    )
    requirements = descriptor.size_requirements
    transforms = Preprocess(mode="none", flip=False, size_multiple=net.size_multiple)
    training = {
        "source": "community checkpoint (spandrel)",
        "path": str(path),
        "architecture": support.architecture.name,
        "registry": registry,
        "purpose": descriptor.purpose,
        "tags": list(descriptor.tags),
        "size_requirements": {
            "minimum": requirements.minimum,
            "multiple_of": requirements.multiple_of,
            "square": requirements.square,
        },
        "precisions": list(net.precisions),
        "tiling": descriptor.tiling.name.lower(),
    }
    preprocess = InputSpec(transforms, descriptor.input_channels, descriptor.output_channels)
    return LoadedModel({"AtoB": net}, {"AtoB": spec}, preprocess, training)


def _detect(state: dict[str, torch.Tensor]) -> tuple[Any, str | None]:
    """The first architecture (spandrel's detection order) whose detector takes ``state``,
    and the registry it is in: spandrel's main one, or the extra arches when opted in."""
    import spandrel

    registries = [("spandrel", spandrel.MAIN_REGISTRY)]
    if os.environ.get(OPT_IN) == "1":
        with needs_extra(RESTRICTED_EXTRA, f"{OPT_IN}=1 (restrictively licensed architectures)"):
            from spandrel_extra_arches import EXTRA_REGISTRY
        registries.append(("spandrel_extra_arches (restrictive licence, opted in)", EXTRA_REGISTRY))
    for name, registry in registries:
        for support in registry.architectures("detection"):
            if support.detect(state):
                return support, name
    return None, None


def _unrecognised(state: dict[str, torch.Tensor]) -> str:
    """Why no architecture fits, and what else might make it load."""
    import spandrel

    message = f"not an architecture spandrel {spandrel.__version__} recognises"
    if os.environ.get(OPT_IN) == "1":
        return message + " (extra arches included)"
    try:
        from spandrel_extra_arches import EXTRA_REGISTRY
    except ImportError:
        return (
            f"{message}; restrictively licensed ones (CodeFormer, Restormer, SRFormer, ...) "
            f'need pip install "translate[{RESTRICTED_EXTRA}]" and {OPT_IN}=1'
        )
    restricted = next(
        (s for s in EXTRA_REGISTRY.architectures("detection") if s.detect(state)), None
    )
    if restricted is None:
        return message + " (extra arches included)"
    return (
        f"a {restricted.architecture.name} checkpoint, an architecture spandrel keeps apart "
        f"for its restrictive (non-commercial) licence; set {OPT_IN}=1 to accept its terms "
        "and load it"
    )
