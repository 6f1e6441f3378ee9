"""Generators of the pix2pix/CycleGAN papers: a ResNet encoder-decoder and a U-Net.

Layer order and module nesting follow the reference implementation, so a reference state
dict maps onto these modules key for key and the parameter counts are identical.
"""

from __future__ import annotations

import torch
from torch import nn

from .features import Generator
from .layers import conv_bias, init_weights, norm_layer
from .registry import GENERATORS


class ResnetBlock(nn.Module):
    """Two 3x3 convolutions with reflection padding and a residual connection."""

    def __init__(self, dim: int, norm: str, dropout: bool, norm_affine: bool | None = None) -> None:
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, bias=bias),
            norm_layer(norm, dim, norm_affine),
            nn.ReLU(True),
        ]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, bias=bias),
            norm_layer(norm, dim, norm_affine),
        ]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(Generator):
    """7x7 stem, two stride-2 downsamplings, ``n_blocks`` ResNet blocks, two upsamplings.

    Tap points are the entries of ``model`` (a ResNet block is one), as the reference CUT
    counts them: 0 is the padded input, 4 the first downsampling convolution, 8 the second
    downsampling's normalized output (rectified in place by layer 9) and 12, 16 the outputs
    of ResNet blocks 2 and 6.
    """

    size_multiple = 4  # two stride-2 convolutions

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: str = "instance",
        norm_affine: bool | None = None,
        dropout: bool = False,
    ) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0; got {n_blocks}")
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, bias=bias),
            norm_layer(norm, ngf, norm_affine),
            nn.ReLU(True),
        ]
        for i in range(2):
            ch = ngf * 2**i
            layers += [
                nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1, bias=bias),
                norm_layer(norm, ch * 2, norm_affine),
                nn.ReLU(True),
            ]
        layers += [ResnetBlock(ngf * 4, norm, dropout, norm_affine) for _ in range(n_blocks)]
        for i in range(2):
            ch = ngf * 2 ** (2 - i)
            layers += [
                nn.ConvTranspose2d(
                    ch, ch // 2, 3, stride=2, padding=1, output_padding=1, bias=bias
                ),
                norm_layer(norm, ch // 2, norm_affine),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def tap_points(self) -> list[nn.Module]:
        return list(self.model)

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class UnetSkipBlock(nn.Module):
    """One U-Net level: downsample, run the inner levels, upsample, concatenate the input.

    The outermost level has no norm and ends in tanh instead of returning the skip concat.
    """

    def __init__(
        self,
        outer_channels: int,
        inner_channels: int,
        in_channels: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        norm: str = "batch",
        norm_affine: bool | None = None,
        dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        innermost = submodule is None
        bias = conv_bias(norm)
        in_channels = outer_channels if in_channels is None else in_channels
        downconv = nn.Conv2d(in_channels, inner_channels, 4, stride=2, padding=1, bias=bias)
        up_in = inner_channels if innermost else inner_channels * 2
        if outermost:
            upconv = nn.ConvTranspose2d(up_in, outer_channels, 4, stride=2, padding=1)
            layers = [downconv, submodule, nn.ReLU(True), upconv, nn.Tanh()]
        else:
            upconv = nn.ConvTranspose2d(up_in, outer_channels, 4, stride=2, padding=1, bias=bias)
            down = [nn.LeakyReLU(0.2, True), downconv]
            if not innermost:
                down.append(norm_layer(norm, inner_channels, norm_affine))
            up = [nn.ReLU(True), upconv, norm_layer(norm, outer_channels, norm_affine)]
            inner = [] if innermost else [submodule]
            layers = down + inner + up + ([nn.Dropout(0.5)] if dropout else [])
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(Generator):
    """U-Net with ``num_downs`` stride-2 levels; 8 levels take 256x256 down to 1x1.

    Level ``i`` (0 = outermost) has ``ngf * min(2**i, 8)`` inner channels, as in the
    reference; dropout, when on, applies to the middle levels at ``ngf * 8`` channels.
    Tap points are the leaf layers in execution order (the default): the encoder's come
    first, then the decoder's.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        num_downs: int = 8,
        norm: str = "batch",
        norm_affine: bool | None = None,
        dropout: bool = False,
    ) -> None:
        super().__init__()
        if num_downs < 1:
            raise ValueError(f"num_downs must be >= 1; got {num_downs}")
        self.size_multiple = 2**num_downs
        widths = [ngf * min(2**i, 8) for i in range(num_downs)]
        block: nn.Module | None = None
        for level in reversed(range(1, num_downs)):
            middle = 4 <= level < num_downs - 1
            block = UnetSkipBlock(
                widths[level - 1],
                widths[level],
                submodule=block,
                norm=norm,
                norm_affine=norm_affine,
                dropout=dropout and middle,
            )
        self.model = UnetSkipBlock(
            out_channels,
            widths[0],
            in_channels=in_channels,
            submodule=block,
            outermost=True,
            norm=norm,
            norm_affine=norm_affine,
        )

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


@GENERATORS.register("resnet_9blocks", "resnet")
@GENERATORS.register("resnet_6blocks", n_blocks=6)
def resnet(
    in_channels: int = 3,
    out_channels: int = 3,
    ngf: int = 64,
    n_blocks: int = 9,
    norm: str = "instance",
    norm_affine: bool | None = None,
    dropout: bool = False,
    init: str = "normal",
    init_gain: float = 0.02,
) -> nn.Module:
    net = ResnetGenerator(in_channels, out_channels, ngf, n_blocks, norm, norm_affine, dropout)
    return init_weights(net, init, init_gain)


@GENERATORS.register("unet_256", "unet")
@GENERATORS.register("unet_128", num_downs=7)
def unet(
    in_channels: int = 3,
    out_channels: int = 3,
    ngf: int = 64,
    num_downs: int = 8,
    norm: str = "batch",
    norm_affine: bool | None = None,
    dropout: bool = False,
    init: str = "normal",
    init_gain: float = 0.02,
) -> nn.Module:
    net = UnetGenerator(in_channels, out_channels, ngf, num_downs, norm, norm_affine, dropout)
    return init_weights(net, init, init_gain)
