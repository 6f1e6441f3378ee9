"""SPADE (Park et al. 2019, GauGAN): spatially-adaptive normalisation and its generator.

A label map (one-hot classes, as :mod:`translate.data.labels` makes them) modulates every
normalisation layer: each activation is normalised without learned parameters, then scaled
and shifted per pixel by a ``gamma`` and ``beta`` that small convolutions compute from the
label map at that layer's resolution. The map is never squeezed through an encoder, so the
classes' layout survives the normalisations that would wash out a label map fed once at the
input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from translate.networks.features import Generator
from translate.networks.layers import check_choice, init_weights

PARAM_FREE_NORMS = ("batch", "instance")


class SPADE(nn.Module):
    """``norm(x) * (1 + gamma(labels)) + beta(labels)``: a normalisation without learned
    parameters (``batch``, the paper's, or ``instance``), then a per-pixel scale and shift
    from the label map resized to ``x`` by nearest neighbour (ids are never blended) through
    a shared 3x3 convolution of ``hidden`` channels and ReLU."""

    def __init__(self, channels: int, label_channels: int, hidden: int = 128, norm: str = "batch"):
        super().__init__()
        check_choice("norm", norm, PARAM_FREE_NORMS)
        norm_class = nn.BatchNorm2d if norm == "batch" else nn.InstanceNorm2d
        self.param_free_norm = norm_class(channels, affine=False)
        self.mlp_shared = nn.Sequential(
            nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU(inplace=True)
        )
        self.mlp_gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        normalized = self.param_free_norm(x)
        labels = F.interpolate(labels, size=x.shape[-2:], mode="nearest")
        shared = self.mlp_shared(labels)
        return normalized * (1 + self.mlp_gamma(shared)) + self.mlp_beta(shared)


class SPADEResnetBlock(nn.Module):
    """Two SPADE, leaky ReLU, 3x3 convolution steps (``min(fin, fout)`` channels between) on
    a shortcut that is the identity, or SPADE and a 1x1 convolution where the width changes."""

    def __init__(self, fin: int, fout: int, label_channels: int, hidden: int, norm: str):
        super().__init__()
        middle = min(fin, fout)
        self.learned_shortcut = fin != fout
        if self.learned_shortcut:  # registered first: it runs first (tap points)
            self.norm_s = SPADE(fin, label_channels, hidden, norm)
            self.conv_s = nn.Conv2d(fin, fout, 1, bias=False)
        self.norm_0 = SPADE(fin, label_channels, hidden, norm)
        self.conv_0 = nn.Conv2d(fin, middle, 3, padding=1)
        self.norm_1 = SPADE(middle, label_channels, hidden, norm)
        self.conv_1 = nn.Conv2d(middle, fout, 3, padding=1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, labels)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, labels), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, labels), 0.2))
        return shortcut + dx


class SPADEGenerator(Generator):
    """SPADE's generator: the label map, downsampled to ``1 / 2**num_upsampling`` of its
    sides by nearest neighbour, through a 3x3 convolution to ``16 ngf`` channels; then seven
    SPADE residual blocks (``head``, ``middle`` 0 and 1 at ``16 ngf``, ``up`` 0 to 3 halving
    the width to ``ngf``) with a x2 nearest upsampling after the head, after middle 1 and
    before each up block but the first; ``num_upsampling`` 6 (the authors' ``more``, for
    larger images) adds one between the middle blocks. Last, leaky ReLU and a 3x3
    convolution to ``out_channels`` with tanh. Input: one-hot label maps (and any extra
    channels, such as instance boundaries), sides a multiple of ``2**num_upsampling``;
    output the same size. No noise or style input: the label map alone decides the image.

    ``spectral_norm`` on the residual blocks' convolutions (not the SPADE ones, the first or
    the last), as the authors' default; ``init`` xavier with gain 0.02, as theirs.
    """

    input_kind = "labels"

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 3,
        ngf: int = 64,
        num_upsampling: int = 5,
        hidden: int = 128,
        norm: str = "batch",
        spectral_norm: bool = True,
        init: str = "xavier",
        init_gain: float = 0.02,
    ):
        super().__init__()
        if num_upsampling not in (5, 6):
            raise ValueError(f"num_upsampling: 5 or 6, got {num_upsampling}")
        self.size_multiple = 2**num_upsampling
        self.fc = nn.Conv2d(in_channels, 16 * ngf, 3, padding=1)
        widths = [16, 16, 16, 16, 8, 4, 2, 1]  # head, middle 0, middle 1, up 0 to 3
        self.blocks = nn.ModuleList(
            SPADEResnetBlock(a * ngf, b * ngf, in_channels, hidden, norm)
            for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.conv_img = nn.Conv2d(ngf, out_channels, 3, padding=1)
        self.tanh = nn.Tanh()
        # before each block: upsample x2? (the paper's order: head, up, middle 0, [up,]
        # middle 1, up, up 0, up, up 1, up, up 2, up, up 3)
        self.upsample_before = [False, True, num_upsampling == 6, True, True, True, True]
        init_weights(self, init, init_gain)
        for block in self.blocks if spectral_norm else []:
            for name in ("conv_0", "conv_1", "conv_s"):
                if hasattr(block, name):
                    setattr(block, name, _spectral_norm(getattr(block, name)))

    def tap_points(self) -> list[nn.Module]:
        """The first convolution, each SPADE block, the last convolution and the tanh."""
        return [self.fc, *self.blocks, self.conv_img, self.tanh]

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        """The image of label map ``x`` (NCHW, sides a multiple of ``size_multiple``)."""
        h, w = x.shape[-2:]
        out = self.fc(F.interpolate(x, size=(h // self.size_multiple, w // self.size_multiple)))
        for up, block in zip(self.upsample_before, self.blocks, strict=True):
            if up:
                out = F.interpolate(out, scale_factor=2.0, mode="nearest")
            out = block(out, x)
        return self.tanh(self.conv_img(F.leaky_relu(out, 0.2)))
