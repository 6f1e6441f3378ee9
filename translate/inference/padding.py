"""Any input size for a generator that needs sides divisible by its spec's ``size_multiple``.

The same module runs inside the converter and inside exported graphs (TorchScript and
ONNX), so an export pads and crops exactly as ``translate convert`` does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from translate.models.model_file import GeneratorSpec


class PadToMultiple(nn.Module):
    """Reflect-pad the bottom and right of NCHW input to the spec's ``size_multiple``, run
    the generator, crop the output back to the spec's ``scale`` times the input. Inputs
    smaller than the padding are edge-padded instead; a traced graph (ONNX) always takes the
    reflect branch, so there sides must be at least the multiple."""

    def __init__(self, generator: nn.Module, spec: GeneratorSpec) -> None:
        super().__init__()
        self.generator = generator
        self.multiple = spec.resolved(generator).size_multiple
        self.scale = spec.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        y = self.generator(self.pad(x))
        return y[..., : h * self.scale, : w * self.scale]

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        h, w, m = x.shape[-2], x.shape[-1], self.multiple
        ph, pw = (m - h % m) % m, (m - w % m) % m  # no negative modulo: TorchScript, ONNX
        if ph > 0 or pw > 0 or torch.jit.is_tracing():  # a traced graph (ONNX) always pads
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return x.contiguous(memory_format=torch.channels_last)


class PadToMultipleWithCode(PadToMultiple):
    """:class:`PadToMultiple` of a generator with a noise input: ``forward(x, z)`` hands the
    code ``z`` (``(N, noise_dim)``) on as the generator's ``z``, so the ONNX graph of a noise
    model takes it as its second input."""

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        h, w = x.shape[-2], x.shape[-1]
        y = self.generator(self.pad(x), z=z)
        return y[..., : h * self.scale, : w * self.scale]
