"""OASIS (Schönfeld et al. 2021): a SPADE generator fed the label map and 3D noise, and a
segmentation network as its discriminator.

The generator is SPADE's residual blocks (:mod:`translate.networks.spade`) with a random
code ``z`` replicated over the pixels and concatenated to the one-hot label map: the "3D
noise" that every normalisation layer sees beside the classes, so one map gives many
images. The discriminator is a U-Net of residual blocks that labels each pixel with one
of the ``label_nc`` real classes or "fake" (``classes = label_nc + 1`` logits per pixel):
its loss teaches the generator each class's look, pixel by pixel, with no perceptual loss.
Both carry spectral norm on their convolutions (not SPADE's), as the authors' code has by
default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from translate.networks.features import Generator
from translate.networks.spade import SPADEResnetBlock, noise_code, spectral_norm_blocks


def with_noise(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The label maps ``x`` with their codes ``z`` (N, noise_dim) replicated over the pixels
    after them: OASIS's "3D noise"."""
    return torch.cat([x, z.to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[-2:])], 1)


class OASISGenerator(Generator):
    """OASIS's generator: ``z`` (``noise_dim`` values per image, drawn from torch's global
    RNG when not given) replicated over the pixels and concatenated to the label map ``x``;
    that map, downsampled by nearest neighbour to 1/32 of its sides, through a 3x3
    convolution to ``16 ngf`` channels; then six SPADE residual blocks (``16, 16, 8, 4, 2,
    1`` times ``ngf`` out) conditioned on the map and noise, with a x2 nearest upsampling
    between blocks; last, leaky ReLU and a 3x3 convolution to ``out_channels`` with tanh.
    Sides a multiple of 32; output the input's size. ``noise_dim`` is at least 1: a
    generator of the label map alone is ``spade``.
    """

    input_kind = "labels"
    size_multiple = 32

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 3,
        ngf: int = 64,
        noise_dim: int = 64,
        hidden: int = 128,
        norm: str = "batch",
    ):
        super().__init__()
        if noise_dim < 1:  # OASIS without noise is SPADE's generator
            raise ValueError(f"noise_dim: at least 1 (for none, use spade), got {noise_dim}")
        self.noise_dim = noise_dim
        conditions = in_channels + noise_dim
        self.fc = nn.Conv2d(conditions, 16 * ngf, 3, padding=1)
        widths = [16, 16, 16, 8, 4, 2, 1]
        self.blocks = nn.ModuleList(
            SPADEResnetBlock(a * ngf, b * ngf, conditions, hidden, norm)
            for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        spectral_norm_blocks(self.blocks)
        self.conv_img = nn.Conv2d(ngf, out_channels, 3, padding=1)
        self.tanh = nn.Tanh()

    def tap_points(self) -> list[nn.Module]:
        """The first convolution, each SPADE block, the last convolution and the tanh."""
        return [self.fc, *self.blocks, self.conv_img, self.tanh]

    def forward(
        self,
        x: torch.Tensor,
        z: torch.Tensor | None = None,
        layers: list[int] | None = None,
        with_output: bool = False,
    ) -> torch.Tensor:
        """The image of label map ``x`` (NCHW, sides a multiple of 32) under code ``z``
        (``(N, noise_dim)``; None: drawn with ``torch.randn``); ``layers`` and
        ``with_output`` as for every :class:`Generator`."""
        return super().forward(with_noise(x, noise_code(x, z, self.noise_dim)), layers, with_output)

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        """The image of ``x``, the label map with the noise channels already after it."""
        h, w = x.shape[-2:]
        out = self.fc(F.interpolate(x, size=(h // self.size_multiple, w // self.size_multiple)))
        for i, block in enumerate(self.blocks):
            if i:
                out = F.interpolate(out, scale_factor=2.0, mode="nearest")
            out = block(out, x)
        return self.tanh(self.conv_img(F.leaky_relu(out, 0.2)))


class _ResidualBlockD(nn.Module):
    """A residual block of OASIS's discriminator: ``[leaky ReLU, x2 upsampling,] conv 3x3,
    leaky ReLU, conv 3x3 [, average-pool /2]`` (the first block of the encoder starts at the
    convolution) beside a shortcut resampled the same way, through a 1x1 convolution where
    the width changes. ``resample``: -1 halves the sides, 1 doubles them."""

    def __init__(self, fin: int, fout: int, resample: int, first: bool = False):
        super().__init__()
        self.resample = resample
        head: list[nn.Module] = [] if first else [nn.LeakyReLU(0.2)]
        if resample > 0:
            head.append(nn.Upsample(scale_factor=2))
        self.conv1 = nn.Sequential(*head, spectral_norm(nn.Conv2d(fin, fout, 3, padding=1)))
        self.conv2 = nn.Sequential(
            nn.LeakyReLU(0.2), spectral_norm(nn.Conv2d(fout, fout, 3, padding=1))
        )
        self.conv_s = spectral_norm(nn.Conv2d(fin, fout, 1)) if fin != fout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dx = self.conv2(self.conv1(x))
        if self.resample > 0:
            shortcut = self.conv_s(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        else:
            shortcut = F.avg_pool2d(self.conv_s(x), 2)
            dx = F.avg_pool2d(dx, 2)
        return shortcut + dx


class OASISDiscriminator(nn.Module):
    """OASIS's segmentation discriminator: a U-Net of residual blocks, ``classes`` logits
    per pixel at the input's size (the trainer's ``label_nc + 1``: "fake" and each class).

    The encoder's six blocks halve the sides each (widths ``2, 2, 4, 4, 8, 8`` times
    ``ndf``: the paper's 128 to 512 at ``ndf`` 64); the decoder's six double them, each
    after the first fed the encoder's output of its size beside its own, down to ``ndf``
    channels and a 1x1 convolution to the logits. Sides a multiple of 64.
    """

    size_multiple = 64

    def __init__(self, in_channels: int, classes: int, ndf: int = 64):
        super().__init__()
        if classes < 2:
            raise ValueError(f"classes: the real classes and fake, at least 2, got {classes}")
        widths = [in_channels] + [m * ndf for m in (2, 2, 4, 4, 8, 8)]
        self.down = nn.ModuleList(
            _ResidualBlockD(widths[i], widths[i + 1], -1, first=i == 0) for i in range(6)
        )
        # up i takes the deepest features (i = 0), else the encoder's of its size beside the
        # previous up block's, and gives the encoder's width one level up (ndf at the top)
        ins = [widths[6]] + [2 * widths[6 - i] for i in range(1, 6)]
        outs = [widths[5 - i] for i in range(5)] + [ndf]
        self.up = nn.ModuleList(_ResidualBlockD(a, b, 1) for a, b in zip(ins, outs, strict=True))
        self.classify = nn.Conv2d(ndf, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        x = self.up[0](x)
        for i, block in enumerate(self.up[1:], start=2):
            x = block(torch.cat([skips[-i], x], 1))
        return self.classify(x)
