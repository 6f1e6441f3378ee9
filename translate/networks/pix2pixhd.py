"""pix2pixHD's coarse-to-fine generator (Wang et al. 2018): a global generator at a coarse
resolution and local enhancers, each at twice the resolution of the one before.

The global generator is a ResNet encoder-decoder on the input average-pooled by 2 per
enhancer. Each enhancer runs a front end of its own (7x7 convolution, one stride-2
downsampling) on the input at its resolution, adds the global generator's last features
(before its output layer) to that, and finishes with residual blocks and an upsampling;
the last one ends in the 7x7 convolution to the image. The paper trains the global
generator alone first, at its own resolution, then the whole:
:meth:`Pix2PixHDGenerator.global_only` runs that first stage with the same modules, through
an output layer of the global generator's own, so a trainer switches stages without
rebuilding the network.

With ``residual`` (an option of this project, not the paper's layout), the whole network's
image is the global generator's own, upsampled, plus the enhancers' detail, whose output
convolution starts at zero: at the switch the whole network draws what the global stage
learnt instead of what a random enhancer makes of it (ControlNet's zero convolution,
ProGAN's fade-in). Trained whole from the first step it did worse on worldmaps' images
(docs/trainers/pix2pixhd.md), so the paper's layout is the default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from translate.networks.features import Generator
from translate.networks.generators import ResnetBlock
from translate.networks.layers import check_choice, conv_bias, init_weights, norm_layer

INPUT_KINDS = ("labels", "image")


def _stem(in_channels: int, width: int, norm: str) -> list[nn.Module]:
    return [
        nn.ReflectionPad2d(3),
        nn.Conv2d(in_channels, width, 7, bias=conv_bias(norm)),
        norm_layer(norm, width),
        nn.ReLU(True),
    ]


def _down(width: int, norm: str) -> list[nn.Module]:
    """A stride-2 convolution doubling the width."""
    return [
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=conv_bias(norm)),
        norm_layer(norm, 2 * width),
        nn.ReLU(True),
    ]


def _up(width: int, norm: str) -> list[nn.Module]:
    """A stride-2 transposed convolution halving the width (``width`` is its input's)."""
    half = width // 2
    return [
        nn.ConvTranspose2d(width, half, 3, 2, 1, output_padding=1, bias=conv_bias(norm)),
        norm_layer(norm, half),
        nn.ReLU(True),
    ]


def _to_image(width: int, out_channels: int) -> nn.Sequential:
    """The 7x7 convolution to the image, before the tanh (which the generator applies: the
    residual image adds before it)."""
    return nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7))


class _Finish(nn.Module):
    """The image in [-1, 1]: tanh of the output layer's, with the coarser stage's image
    (before its tanh) added first, upsampled, where one is given (``residual``)."""

    def forward(self, image: torch.Tensor, coarse: torch.Tensor | None = None) -> torch.Tensor:
        if coarse is not None:
            size = image.shape[-2:]
            image = image + F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)
        return torch.tanh(image)


class Pix2PixHDGenerator(Generator):
    """pix2pixHD's generator for ``in_channels`` inputs (one-hot classes, plus the
    instance-boundary channel when there is one, or image channels with ``input_kind``
    ``image``).

    The global generator (``global_net``): 7x7 convolution to ``ngf * 2**n_local_enhancers``
    channels, ``n_downsample_global`` stride-2 convolutions doubling the width,
    ``n_blocks_global`` residual blocks, as many transposed convolutions back, on the input
    average-pooled (3x3, stride 2) once per enhancer. Its output layer (``global_out``,
    7x7 convolution and tanh) is used only by :meth:`global_only`. Enhancer ``n`` (1 the
    coarsest) works at ``ngf * 2**(n_local_enhancers - n)`` channels: ``front[n-1]`` (7x7
    convolution, one downsampling) on the input at its resolution, the coarser stage's
    features added, then ``back[n-1]`` (``n_blocks_local`` residual blocks at twice its
    width, one transposed convolution); the last enhancer's output goes through ``out``.
    Norms: instance (the paper's), ``batch`` or ``none``. Sides a multiple of
    ``2**(n_downsample_global + n_local_enhancers)``; output the input's size, in [-1, 1].
    With no enhancer it is the global generator alone, ending in ``global_out``.

    ``residual``: the image is ``tanh(out(...) + up(global_out(...)))``, the global
    generator's output layer (before its tanh) upsampled bilinearly to the full size, and
    ``out`` starts at zero; False (the default): the paper's, ``tanh(out(...))``. Weights
    ``init`` (``normal``) with ``init_gain`` (0.02), the reference's, as the other
    generators.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 3,
        ngf: int = 32,
        n_downsample_global: int = 4,
        n_blocks_global: int = 9,
        n_local_enhancers: int = 1,
        n_blocks_local: int = 3,
        norm: str = "instance",
        input_kind: str = "labels",
        residual: bool = False,
        init: str = "normal",
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        check_choice("input_kind", input_kind, INPUT_KINDS)
        for key, value in (
            ("n_downsample_global", n_downsample_global),
            ("n_blocks_global", n_blocks_global),
            ("n_local_enhancers", n_local_enhancers),
            ("n_blocks_local", n_blocks_local),
        ):
            if value < 0:
                raise ValueError(f"{key} must be 0 or more; got {value}")
        self.input_kind = input_kind
        self.n_local_enhancers = n_local_enhancers
        self.residual = residual and n_local_enhancers > 0
        self.size_multiple = 2 ** (n_downsample_global + n_local_enhancers)
        width = ngf * 2**n_local_enhancers
        layers = _stem(in_channels, width, norm)
        for i in range(n_downsample_global):
            layers += _down(width * 2**i, norm)
        inner = width * 2**n_downsample_global
        layers += [ResnetBlock(inner, norm, dropout=False) for _ in range(n_blocks_global)]
        for i in reversed(range(n_downsample_global)):
            layers += _up(width * 2 ** (i + 1), norm)
        self.global_net = nn.Sequential(*layers)
        self.global_out = _to_image(width, out_channels)
        self.front = nn.ModuleList()
        self.back = nn.ModuleList()
        for n in range(1, n_local_enhancers + 1):
            local = ngf * 2 ** (n_local_enhancers - n)
            self.front.append(nn.Sequential(*_stem(in_channels, local, norm), *_down(local, norm)))
            blocks = [ResnetBlock(2 * local, norm, dropout=False) for _ in range(n_blocks_local)]
            self.back.append(nn.Sequential(*blocks, *_up(2 * local, norm)))
        self.out = _to_image(ngf, out_channels) if n_local_enhancers else None
        # the paper's: each coarser input is the finer one averaged over 3x3, stride 2
        self.pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.finish = _Finish()
        init_weights(self, init, init_gain)
        if self.residual:  # the enhancers' detail starts at zero (after the common init)
            nn.init.zeros_(self.out[1].weight)
            nn.init.zeros_(self.out[1].bias)

    def downsample(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as the global generator sees it: average-pooled once per enhancer (a trainer
        brings the inputs and targets of the global stage to that size with this)."""
        for _ in range(self.n_local_enhancers):
            x = self.pool(x)
        return x

    def global_only(self, x: torch.Tensor) -> torch.Tensor:
        """The global generator alone, with its own output layer, on ``x`` at its resolution
        (``downsample`` of a full-resolution input): the first stage of the coarse-to-fine
        training."""
        return self.finish(self.global_out(self.global_net(x)))

    def tap_points(self) -> list[nn.Module]:
        """The global generator's layers, then each enhancer's front and back, then the
        output layer and the image."""
        if not self.n_local_enhancers:
            return [*self.global_net, *self.global_out, self.finish]
        stages = [m for pair in zip(self.front, self.back, strict=True) for m in pair]
        return [*self.global_net, *stages, *self.out, self.finish]

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        if not self.n_local_enhancers:
            return self.global_only(x)
        inputs = [x]
        for _ in range(self.n_local_enhancers):
            inputs.append(self.pool(inputs[-1]))
        features = self.global_net(inputs[-1])
        coarse = self.global_out(features) if self.residual else None
        for n, (front, back) in enumerate(zip(self.front, self.back, strict=True)):
            features = back(front(inputs[-2 - n]) + features)
        return self.finish(self.out(features), coarse)
