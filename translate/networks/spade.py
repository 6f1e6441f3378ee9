"""SPADE (Park et al. 2019, GauGAN): spatially-adaptive normalisation and its generator.

A label map (one-hot classes, as :mod:`translate.data.labels` makes them) modulates every
normalisation layer: each activation is normalised without learned parameters, then scaled
and shifted per pixel by a ``gamma`` and ``beta`` that small convolutions compute from the
label map at that layer's resolution. The map is never squeezed through an encoder, so the
classes' layout survives the normalisations that would wash out a label map fed once at the
input. With a style encoder (``style_dim``), an image's code (its style) decides what the
label map leaves open: the generator starts from that code instead of the map.
"""

from __future__ import annotations

import math

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
    a shared 3x3 convolution of ``hidden`` channels and ReLU. ``labels`` at ``x``'s size are
    taken as they are (a block resizes them once for its layers)."""

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
        if labels.shape[-2:] != x.shape[-2:]:
            labels = F.interpolate(labels, size=x.shape[-2:], mode="nearest")
        shared = self.mlp_shared(labels)
        # The same operations in place on the fresh buffers they make: at full resolution
        # these image-sized passes cost as much as the convolutions. A graph keeps
        # ``normalized`` for gamma's gradient: only without one is it overwritten.
        scale = self.mlp_gamma(shared).add_(1)
        out = normalized * scale if torch.is_grad_enabled() else normalized.mul_(scale)
        return out.add_(self.mlp_beta(shared))


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
        # Its SPADE layers share x's size: the map is resized once for all of them.
        if labels.shape[-2:] != x.shape[-2:]:
            labels = F.interpolate(labels, size=x.shape[-2:], mode="nearest")
        shortcut = self.conv_s(self.norm_s(x, labels)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, labels), 0.2, inplace=True))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, labels), 0.2, inplace=True))
        return dx.add_(shortcut)


class StyleEncoder(nn.Module):
    """SPADE's image encoder (the authors' ``ConvEncoder``): the image resized to 256x256
    (bilinear), six 3x3 stride-2 convolutions (``ngf``, 2, 4, 8, 8, 8 ``ngf``), each with
    instance norm and leaky ReLU 0.2, down to 4x4, then two linear layers to the mean and
    log-variance of a ``style_dim`` code."""

    SIDE = 256  # the authors' fixed input side: any image gives a code of the same layout

    def __init__(self, in_channels: int, ngf: int, style_dim: int):
        super().__init__()
        widths = [in_channels] + [w * ngf for w in (1, 2, 4, 8, 8, 8)]
        self.convs = nn.Sequential(
            *(
                layer
                for a, b in zip(widths[:-1], widths[1:], strict=True)
                for layer in (
                    nn.Conv2d(a, b, 3, stride=2, padding=1),
                    nn.InstanceNorm2d(b),
                    nn.LeakyReLU(0.2),
                )
            )
        )
        features = widths[-1] * (self.SIDE // 2**6) ** 2
        self.fc_mu = nn.Linear(features, style_dim)
        self.fc_var = nn.Linear(features, style_dim)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)``, each ``(N, style_dim)``, of images NCHW in [-1, 1]."""
        if image.shape[-2:] != (self.SIDE, self.SIDE):
            image = F.interpolate(image, size=(self.SIDE, self.SIDE), mode="bilinear")
        x = self.convs(image).flatten(1)
        return self.fc_mu(x), self.fc_var(x)


def noise_code(x: torch.Tensor, z: torch.Tensor | None, noise_dim: int) -> torch.Tensor:
    """The code of the label maps ``x``: ``z``, checked to be ``(N, noise_dim)``, or drawn
    from torch's global RNG (``torch.randn``) when None."""
    if z is None:
        return torch.randn(x.shape[0], noise_dim, device=x.device, dtype=x.dtype)
    if z.shape != (x.shape[0], noise_dim):
        raise ValueError(
            f"z: expected shape {(x.shape[0], noise_dim)} (images, noise_dim), got {tuple(z.shape)}"
        )
    return z


def spectral_norm_blocks(blocks: nn.ModuleList) -> None:
    """Spectral norm on the convolutions of SPADE residual blocks (not on their SPADE
    layers), as the SPADE and OASIS authors' generators have it."""
    for block in blocks:
        for name in ("conv_0", "conv_1", "conv_s"):
            if hasattr(block, name):
                setattr(block, name, _spectral_norm(getattr(block, name)))


class SPADEGenerator(Generator):
    """SPADE's generator: the label map, downsampled to ``1 / 2**num_upsampling`` of its
    sides by nearest neighbour, through a 3x3 convolution to ``16 ngf`` channels; then seven
    SPADE residual blocks (``head``, ``middle`` 0 and 1 at ``16 ngf``, ``up`` 0 to 3 halving
    the width to ``ngf``) with a x2 nearest upsampling after the head, after middle 1 and
    before each up block but the first; ``num_upsampling`` 6 (the authors' ``more``, for
    larger images) adds one between the middle blocks. Last, leaky ReLU and a 3x3
    convolution to ``out_channels`` with tanh. Input: one-hot label maps (and any extra
    channels, such as instance boundaries), sides a multiple of ``2**num_upsampling``;
    output the same size.

    ``style_dim`` > 0 adds the paper's style encoder (:class:`StyleEncoder`, of
    ``out_channels`` images, saved with the generator): the start is then a linear layer of a
    code ``z`` (``noise_dim = style_dim``) to the ``16 ngf`` channels of the grid a 256 px
    crop has after the downsampling, the paper's, resized (bilinear) to the label map's
    grid where that differs. ``G(x, z)``: z ``(N, style_dim)``, drawn from ``torch.randn``
    (the prior the KL term pulls the codes to) when None; :meth:`encode_style` gives an
    image's code. Without it, the label map alone decides the image.

    ``spectral_norm`` on the residual blocks' and the style encoder's convolutions (not the
    SPADE ones, the first or the last), as the authors' default; ``init`` xavier with gain
    0.02, as theirs.
    """

    input_kind = "labels"
    noise_dim = 0  # the length of the code z (the style); 0: none

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 3,
        ngf: int = 64,
        num_upsampling: int = 5,
        hidden: int = 128,
        norm: str = "batch",
        style_dim: int = 0,
        spectral_norm: bool = True,
        init: str = "xavier",
        init_gain: float = 0.02,
    ):
        super().__init__()
        if num_upsampling not in (5, 6):
            raise ValueError(f"num_upsampling: 5 or 6, got {num_upsampling}")
        self.size_multiple = 2**num_upsampling
        if style_dim:
            self.noise_dim = style_dim
            grid = StyleEncoder.SIDE // self.size_multiple
            self.code_map = (16 * ngf, grid, grid)  # the shape the code's linear layer fills
            self.encoder = StyleEncoder(out_channels, ngf, style_dim)
            self.fc: nn.Module = nn.Linear(style_dim, math.prod(self.code_map))
        else:
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
        if spectral_norm:
            spectral_norm_blocks(self.blocks)
            convs = self.encoder.convs if style_dim else []
            for i, layer in enumerate(convs):
                if isinstance(layer, nn.Conv2d):
                    convs[i] = _spectral_norm(layer)

    def tap_points(self) -> list[nn.Module]:
        """The first layer (a convolution of the map, or the code's linear layer), each SPADE
        block, the last convolution and the tanh."""
        return [self.fc, *self.blocks, self.conv_img, self.tanh]

    def forward(  # type: ignore[override]
        self,
        x: torch.Tensor,
        z: torch.Tensor | None = None,
        layers: list[int] | None = None,
        with_output: bool = False,
    ) -> torch.Tensor:
        """``generate(x, z)``; with ``layers``, the feature taps of a pass with a drawn z."""
        if layers is None:
            return self.generate(x, z)
        if z is not None:
            raise ValueError("z: feature taps (layers) draw their own code; pass one or the other")
        return super().forward(x, layers, with_output)

    def generate(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """The image of label map ``x`` (NCHW, sides a multiple of ``size_multiple``), in the
        style ``z`` (``(N, noise_dim)``; None: drawn) where the generator takes one."""
        h, w = x.shape[-2:]
        grid = (h // self.size_multiple, w // self.size_multiple)
        if not self.noise_dim:
            if z is not None:
                raise ValueError("z: this SPADE generator takes no code (style_dim 0)")
            out = self.fc(F.interpolate(x, size=grid))
        else:
            out = self.fc(noise_code(x, z, self.noise_dim)).unflatten(1, self.code_map)
            if out.shape[-2:] != grid:
                out = F.interpolate(out, size=grid, mode="bilinear")
                # The sizes it has, its channel count a constant: the ONNX exporter knows no
                # size of a resize's output, and the batch norm after needs the channels.
                out = out.reshape(out.shape[0], self.code_map[0], *out.shape[2:])
        for up, block in zip(self.upsample_before, self.blocks, strict=True):
            if up:
                out = F.interpolate(out, scale_factor=2.0, mode="nearest")
            out = block(out, x)
        return self.tanh(self.conv_img(F.leaky_relu(out, 0.2)))

    def style_posterior(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The style encoder's ``(mu, logvar)`` of ``image`` (NCHW in [-1, 1]), for training
        (a code drawn from them, and the KL term)."""
        if not self.noise_dim:
            raise ValueError("this SPADE generator has no style encoder (style_dim 0)")
        return self.encoder(image)

    def encode_style(self, image: torch.Tensor) -> torch.Tensor:
        """The style ``(N, noise_dim)`` of ``image`` (NCHW in [-1, 1]): the encoder's mean."""
        return self.style_posterior(image)[0]
