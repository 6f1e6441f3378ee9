"""Super-resolution generators of Real-ESRGAN (Wang et al., 2021): the compact real-time
network (SRVGGNetCompact).

Module names and nesting follow the upstream code, so a state dict from Real-ESRGAN or
spandrel loads with ``load_state_dict(strict=True)`` and ours loads there. Upstream networks
read and write pixels in [0, 1]; the zoo's generators take and return [-1, 1], so
:meth:`Generator.generate` converts at both ends and the weights stay upstream's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .features import Generator
from .layers import check_choice
from .registry import GENERATORS

ACTIVATIONS = ("prelu", "relu", "leakyrelu")


def check_scale(scale: int, choices: tuple[int, ...] | None = None) -> None:
    """``scale`` must be a positive integer (one of ``choices`` where the network has few)."""
    if scale < 1 or (choices is not None and scale not in choices):
        allowed = ", ".join(map(str, choices)) if choices else "a positive integer"
        raise ValueError(f"scale must be {allowed}; got {scale!r}")


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], the range upstream weights were trained on."""
    return (x + 1) * 0.5


class NearestResidual(nn.Module):
    """The compact network's output: the upsampled residual plus the nearest-upsampled input.

    Upstream adds them in [0, 1]; here the residual is in [0, 1] units and the input in
    [-1, 1], and ``2 * (residual + nearest(to_unit(x))) - 1 == 2 * residual + nearest(x)``.
    A module (without parameters, so no state-dict keys) so the output is the last tap point.
    """

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, residual: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return 2 * residual + F.interpolate(x, scale_factor=self.scale, mode="nearest")


def _activation(act: str, channels: int) -> nn.Module:
    if act == "prelu":
        return nn.PReLU(num_parameters=channels)
    if act == "relu":
        return nn.ReLU(inplace=True)
    return nn.LeakyReLU(negative_slope=0.1, inplace=True)


@GENERATORS.register("srvgg_compact")
class SRVGGNetCompact(Generator):
    """Real-ESRGAN's compact network: ``num_conv`` 3x3 convolutions at ``num_feat`` channels
    on the low-resolution image, a pixel shuffle to ``scale`` x, and the nearest-upsampled
    input added, so the body learns the residual. Keys ``body.N.*`` as upstream;
    ``realesr-general-x4v3`` is ``num_conv=32``, the anime video model ``num_conv=16``.
    PyTorch's default initialisation, as upstream."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        scale: int = 4,
        act: str = "prelu",
    ) -> None:
        super().__init__()
        check_scale(scale)
        check_choice("act", act, ACTIVATIONS)
        if out_channels != in_channels:
            # Upstream adds the upsampled input to the output, channel for channel.
            raise ValueError(
                f"out_channels must equal in_channels ({in_channels}) for srvgg_compact; "
                f"got {out_channels}"
            )
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(in_channels, num_feat, 3, 1, 1)]
        layers.append(_activation(act, num_feat))
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), _activation(act, num_feat)]
        layers.append(nn.Conv2d(num_feat, out_channels * scale * scale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(scale)
        self.residual = NearestResidual(scale)

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        out = to_unit(x)
        for layer in self.body:
            out = layer(out)
        return self.residual(self.upsampler(out), x)
