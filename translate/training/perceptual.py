"""The perceptual loss of ESRGAN / Real-ESRGAN: L1 between VGG19 features of the output and
of the target, from a local weights file (none can be downloaded here).

The network is torchvision's VGG19 ``features`` (``vgg19().features``: the layer indices
of its state dict), cut after the deepest layer asked for. Layers are named as BasicSR names
them (``conv1_1``, ``relu1_1``, ..., ``pool5``); a ``conv`` layer's output is before its
ReLU, as Real-ESRGAN's ``perceptual_opt`` (``use_input_norm``, ``range_norm: false``) takes
it. Images are mapped to [0, 1] and normalised with the ImageNet mean and deviation the
weights were trained with.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from translate.core import torch_file

_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def vgg19_layer_names() -> list[str]:
    """The name of each entry of torchvision's ``vgg19().features``, in order."""
    # torchvision (a second or more to import) only once a perceptual loss is configured:
    # the SR trainer imports this module without one.
    from torchvision.models.vgg import cfgs

    names, block, conv = [], 1, 0
    for entry in cfgs["E"]:
        if entry == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        else:
            conv += 1
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
    return names


class PerceptualLoss(nn.Module):
    """``sum_l weight_l * L1(vgg_l(output), vgg_l(target))`` over ``layers`` ({name: weight})
    for NCHW images in [-1, 1] (gray repeated to RGB, a 4th channel ignored).

    ``weights``: a torch file of torchvision's VGG19 state dict (``features.<i>.weight``
    keys; a state dict of ``features`` alone, ``<i>.weight``, also loads), read with
    :func:`translate.core.torch_file.load` (no pickled code runs). The features are frozen.
    """

    def __init__(self, weights: str | Path, layers: dict[str, float]) -> None:
        from torchvision.models.vgg import cfgs, make_layers

        super().__init__()
        names = vgg19_layer_names()
        unknown = sorted(set(layers) - set(names))
        if unknown or not layers:
            raise ValueError(
                f"perceptual_layers: {', '.join(unknown) or 'none given'}; VGG19 layers are "
                f"{', '.join(names)}"
            )
        for name, weight in layers.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ValueError(f"perceptual_layers: {name}'s weight {weight!r} is not a number")
        self.layers = {names.index(n): float(w) for n, w in layers.items()}
        depth = max(self.layers) + 1
        self.features = nn.Sequential(*list(make_layers(cfgs["E"]))[:depth])
        self.features.load_state_dict(_features_state(Path(weights), self.features))
        self.features.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def _taps(self, images: torch.Tensor) -> dict[int, torch.Tensor]:
        x = (images + 1) / 2
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]
        x = (x - self.mean) / self.std
        taps = {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.layers:
                taps[index] = x
        return taps

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            wanted = self._taps(target)
        got = self._taps(output)
        return sum(w * F.l1_loss(got[i], wanted[i].detach()) for i, w in self.layers.items())


def configured(weights: str | Path, layers: dict[str, float]) -> PerceptualLoss:
    """The loss of a config's ``loss.perceptual_weights`` and ``loss.perceptual_layers``, its
    errors naming the key at fault."""
    try:
        return PerceptualLoss(weights, layers)
    except ValueError as exc:  # the layers' messages start with their key
        key, _, reason = str(exc).partition(": ")
        if key == "perceptual_layers":
            raise ValueError(f"config key 'loss.perceptual_layers': {reason}") from None
        raise ValueError(f"config key 'loss.perceptual_weights': {exc}") from None


def _features_state(path: Path, features: nn.Sequential) -> dict[str, torch.Tensor]:
    """The state dict of ``features`` (the first layers of VGG19) from the file ``path``;
    a missing or misshapen tensor is a ``ValueError`` naming the file and the key."""
    if not path.is_file():
        raise ValueError(f"{path}: no such VGG19 weights file")
    state = torch_file.load(path, "VGG19 weights file")
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict of VGG19 (holds a {type(state).__name__})")
    if any(k.startswith("features.") for k in state):
        state = {
            k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")
        }
    wanted = features.state_dict()
    for key, tensor in wanted.items():
        got = state.get(key)
        if not isinstance(got, torch.Tensor) or got.shape != tensor.shape:
            found = "missing" if got is None else f"shape {tuple(getattr(got, 'shape', ()))}"
            raise ValueError(
                f"{path}: not torchvision's VGG19 weights: features.{key} is {found}, "
                f"expected shape {tuple(tensor.shape)}"
            )
    return {k: state[k].float() for k in wanted}
