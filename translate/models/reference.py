"""Import generator checkpoints of the reference pytorch-CycleGAN-and-pix2pix code.

A ``.pth`` file there is a bare state dict; the architecture is not stored, so it is read
off the weights: the first convolution gives the family (7x7: ResNet, 4x4: U-Net), ``ngf``
and the input channels; the count of convolutions gives the depth; which norm layers left
keys, and whether the convolutions carry a bias (the reference drops it before batch
norm), give the norm; blur kernels (``filt`` buffers) give the CUT reference's
anti-aliased ResNet. Our generators mirror the reference's module nesting, so each
candidate architecture is built (on the meta device, so for free) and the one whose state
dict fits is chosen: by key names where they match, else by tensor order and shapes, which
is how checkpoints of forks that renamed inner attributes still load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from translate.core import torch_file
from translate.data.transforms import Preprocess
from translate.models.model_file import GeneratorSpec, InputSpec, LoadedModel
from translate.networks import GENERATORS

# Added by DataParallel/DDP and by torch.compile (the reference's 2025 version saves it).
PREFIXES = ("module.", "_orig_mod.")
# Keys under which training scripts commonly nest a generator's state dict.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "netG", "generator")
# Norm buffers that carry no information in eval mode for instance norm; never compared.
NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")
# (norm, norm_affine) in order of preference when the weights cannot tell them apart:
# instance norm without parameters leaves no keys, exactly as no norm at all.
NORM_CHOICES = (
    ("batch", None),
    ("batch", False),
    ("instance", None),
    ("instance", True),
    ("none", None),
)


@dataclass
class _Candidate:
    spec: GeneratorSpec
    keys: list[str]
    shapes: list[torch.Size]


def load_reference(
    path: str | Path,
    device: str | torch.device = "cpu",
    arch: str | None = None,
    norm: str | None = None,
    checkpoint: Any = None,
) -> LoadedModel:
    """Load a reference generator checkpoint as direction ``AtoB``.

    A CycleGAN ``*net_G_A.pth`` whose ``*net_G_B.pth`` lies beside it loads both, as
    ``AtoB`` and ``BtoA``. ``arch`` (a zoo name) and ``norm`` override the inference;
    ``checkpoint`` is ``path``'s content when the caller has already read it.
    """
    path = Path(path)
    files = {"AtoB": path}
    if path.stem.endswith("net_G_A"):
        partner = path.with_name(path.name.replace("net_G_A", "net_G_B"))
        if partner.is_file():
            files["BtoA"] = partner
    generators, specs, notes = {}, {}, []
    for direction, file in files.items():
        content = checkpoint if file == path else None
        net, spec, file_notes = import_generator(file, arch=arch, norm=norm, checkpoint=content)
        generators[direction] = net.to(device).eval()
        specs[direction] = spec
        notes += [f"{file.name}: {note}" for note in file_notes]
    first = specs["AtoB"]
    # The reference trained at a fixed size; any size runs natively.
    transforms = Preprocess(mode="none", flip=False, size_multiple=generators["AtoB"].size_multiple)
    preprocess = InputSpec(transforms, first.in_channels, first.out_channels)
    training = {
        "source": "reference checkpoint",
        "path": [str(f) for f in files.values()] if len(files) > 1 else str(path),
        "notes": notes,
    }
    return LoadedModel(generators, specs, preprocess, training)


def import_generator(
    path: Path, arch: str | None = None, norm: str | None = None, checkpoint: Any = None
) -> tuple[torch.nn.Module, GeneratorSpec, list[str]]:
    """One checkpoint as ``(module on CPU, spec, notes on what was assumed)``."""
    state = read_state_dict(path, checkpoint)
    if not any(v.dim() == 4 for v in state.values()):
        raise ValueError(f"{path}: no convolution weights; not a generator state dict")
    notes: list[str] = []
    if _drop_old_instance_norm_stats(state):
        notes.append("dropped running stats of instance norm layers (pre-0.4 PyTorch file)")
    candidates = _candidates(path, state, arch, norm)
    tensors = {k: v for k, v in state.items() if not _is_stat_counter(k)}
    theirs = [(k, v.shape) for k, v in tensors.items()]
    by_name = [c for c in candidates if list(zip(c.keys, c.shapes, strict=True)) == theirs]
    by_shape = [c for c in candidates if c.shapes == [shape for _, shape in theirs]]
    chosen = (by_name or by_shape or [None])[0]
    if chosen is None:
        message = _misfit(path, theirs, candidates)
        if not _has_conv_bias(state) and not any(k.endswith(".running_mean") for k in state):
            message += (
                "; convolutions without bias and no norm layers are what the reference writes "
                "for --norm none, which drops the bias too; our generators keep it, so such "
                "a checkpoint cannot be imported"
            )
        raise ValueError(message)
    if not by_name:
        notes.append("key names differ from the reference; weights mapped by order and shape")
    notes += _ambiguities(chosen.spec, by_name or by_shape)
    return _build(chosen, list(tensors.values())), chosen.spec, notes


def _build(candidate: _Candidate, tensors: list[torch.Tensor]) -> torch.nn.Module:
    """The candidate's module holding ``tensors``, given in the order of its state dict."""
    net = candidate.spec.build()
    ours = net.state_dict()
    mapped = dict(zip(candidate.keys, tensors, strict=True))
    for key, value in ours.items():
        if _is_stat_counter(key):
            mapped[key] = value  # absent from pre-0.4 files; unused in eval mode
    net.load_state_dict({k: v.to(ours[k].dtype) for k, v in mapped.items()})
    return net


def read_state_dict(path: Path, checkpoint: Any = None) -> dict[str, torch.Tensor]:
    """The tensors of a ``torch.save``d state dict, unwrapped and with prefixes stripped."""
    obj = _unwrap(path, read_checkpoint(path) if checkpoint is None else checkpoint)
    return {_strip_prefixes(key): value for key, value in obj.items()}


def read_checkpoint(path: Path) -> Any:
    """What ``torch.save`` wrote to ``path``, read by :func:`translate.core.torch_file.load`: a
    file that needs to run pickled code, or more memory than it holds, is refused."""
    if torch_file.is_torchscript(path):
        raise ValueError(
            f"{path}: a TorchScript module (as `translate export` writes), not a state dict; "
            "pass the model it was exported from"
        )
    return torch_file.load(path)


def _unwrap(path: Path, obj: Any) -> dict[str, torch.Tensor]:
    while isinstance(obj, dict) and not _is_state_dict(obj):
        wrapped = [key for key in WRAPPER_KEYS if key in obj]
        if len(wrapped) != 1:
            raise ValueError(
                f"{path}: not a generator state dict; top-level keys: "
                f"{', '.join(map(str, list(obj)[:10]))}; a wrapper should hold it under "
                f"exactly one of {', '.join(WRAPPER_KEYS)}"
            )
        obj = obj[wrapped[0]]
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"{path}: not a state dict (found {type(obj).__name__})")
    return obj


def _is_state_dict(obj: dict[Any, Any]) -> bool:
    return bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def _strip_prefixes(key: str) -> str:
    while key.startswith(PREFIXES):
        for prefix in PREFIXES:
            key = key.removeprefix(prefix)
    return key.replace("._orig_mod.", ".")


def _is_stat_counter(key: str) -> bool:
    return key.endswith(".num_batches_tracked")


def _module(key: str) -> str:
    return key.rpartition(".")[0]


def _has_conv_bias(state: dict[str, torch.Tensor]) -> bool:
    first = next(k for k, v in state.items() if v.dim() == 4)
    return _module(first) + ".bias" in state


def _drop_old_instance_norm_stats(state: dict[str, torch.Tensor]) -> bool:
    """Remove norm layers that hold only running stats when the convolutions have a bias.

    Biased convolutions mean instance norm in the reference, and PyTorch before 0.4 saved
    running stats for it; the reference's own loader drops them the same way.
    """
    if not _has_conv_bias(state):
        return False
    modules: dict[str, set[str]] = {}
    for key in state:
        modules.setdefault(_module(key), set()).add(key.rpartition(".")[2])
    stale = [m for m, names in modules.items() if names <= set(NORM_STATS)]
    for module in stale:
        for name in modules[module]:
            del state[f"{module}.{name}"]
    return bool(stale)


def _candidates(
    path: Path, state: dict[str, torch.Tensor], arch: str | None, norm: str | None
) -> list[_Candidate]:
    convs = [v.shape for v in state.values() if v.dim() == 4]
    ngf, in_channels, kernel = convs[0][0], convs[0][1], convs[0][2]
    family = arch.partition("_")[0] if arch else {7: "resnet", 4: "unet"}.get(kernel)
    if family == "resnet":
        out_channels = convs[-1][0]
        depth = {"n_blocks": sum(s == (ngf * 4, ngf * 4, 3, 3) for s in convs) // 2}
        name = arch or ("resnet_6blocks" if depth["n_blocks"] == 6 else "resnet_9blocks")
        dropouts = (False, True)  # False first: the reference's CycleGAN default
        # the CUT reference's default blurred resampling keeps its kernels as "filt" buffers
        if any(k.endswith(".filt") for k in state):
            depth["antialias"] = True
    elif family == "unet":
        out_channels = convs[-1][1]  # a transposed convolution: (in, out, k, k)
        depth = {"num_downs": len(convs) // 2}
        name = arch or ("unet_128" if depth["num_downs"] == 7 else "unet_256")
        dropouts = (True,)  # invisible in the weights; the reference's pix2pix default
    elif arch:
        GENERATORS.options(arch)  # an unknown name raises, listing the zoo
        raise ValueError(
            f"{path}: only resnet_* and unet_* generators can be imported; got {arch!r}"
        )
    else:
        raise ValueError(
            f"{path}: the first convolution is {kernel}x{kernel}; "
            "expected 7x7 (ResNet generator) or 4x4 (U-Net generator); pass --arch"
        )
    if arch:
        depth = {k: v for k, v in depth.items() if k == "antialias"}  # the name sets the depth
    candidates = []
    for norm_name, affine in NORM_CHOICES:
        if norm and norm_name != norm:
            continue
        for dropout in dropouts:
            options = {"ngf": ngf, **depth, "norm": norm_name, "dropout": dropout}
            if affine is not None:
                options["norm_affine"] = affine
            spec = GeneratorSpec(name, in_channels, out_channels, options)
            with torch.device("meta"):
                ours = spec.build().state_dict()
            ours = {k: v for k, v in ours.items() if not _is_stat_counter(k)}
            candidates.append(_Candidate(spec, list(ours), [v.shape for v in ours.values()]))
    if not candidates:
        raise ValueError(f"{path}: unknown norm {norm!r}; expected batch, instance or none")
    return candidates


def _ambiguities(chosen: GeneratorSpec, fitting: list[_Candidate]) -> list[str]:
    notes = []
    if any(c.spec.options["norm"] != chosen.options["norm"] for c in fitting):
        alternatives = sorted({c.spec.options["norm"] for c in fitting})
        notes.append(
            f"norm {chosen.options['norm']!r} assumed; the weights fit "
            f"{' and '.join(alternatives)} alike (pass --norm to choose)"
        )
    if chosen.name.startswith("unet"):
        notes.append("U-Net dropout cannot be seen in the weights; assumed on (pix2pix)")
    elif any(c.spec.options["dropout"] != chosen.options["dropout"] for c in fitting):
        notes.append("dropout cannot be seen in renamed weights; assumed off (CycleGAN)")
    return notes


def _misfit(path: Path, theirs: list[tuple[str, torch.Size]], candidates: list[_Candidate]) -> str:
    """Name the first tensor that fits no candidate, against the closest candidate."""

    def fitting_prefix(c: _Candidate) -> int:
        return next(
            (i for i, (s, (_, t)) in enumerate(zip(c.shapes, theirs, strict=False)) if s != t),
            min(len(c.shapes), len(theirs)),
        )

    best = max(candidates, key=fitting_prefix)
    i = fitting_prefix(best)
    options = ", ".join(f"{k}={v}" for k, v in best.spec.options.items())
    head = f"{path}: the weights fit no {best.spec.name} generator; closest is ({options})"
    if i < len(theirs) and i < len(best.keys):
        key, shape = theirs[i]
        return (
            f"{head}: {key} {tuple(shape)} does not fit the expected "
            f"{best.keys[i]} {tuple(best.shapes[i])}"
        )
    if i < len(theirs):
        return f"{head}: {theirs[i][0]} {tuple(theirs[i][1])} is more than it expects"
    return f"{head}: the file ends before the expected {best.keys[i]} {tuple(best.shapes[i])}"
