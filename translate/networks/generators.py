"""Generators of the pix2pix/CycleGAN papers: a ResNet encoder-decoder and a U-Net, plus
the depthwise-separable "mobile" ResNet of GAN Compression (Li et al., CVPR 2020) and a
real-time student that runs its blocks on pixel-unshuffled inputs.

Layer order and module nesting follow the reference implementation, so a reference state
dict maps onto these modules key for key and the parameter counts are identical.
"""

from __future__ import annotations

import torch
from torch import nn

from translate.networks.features import Generator
from translate.networks.layers import BlurDownsample, BlurUpsample, conv_bias, norm_layer

# 2**16 px: a side no image reaches; deeper U-Nets only nest (and recurse) past Python's limit.
MAX_NUM_DOWNS = 16


class SeparableConv(nn.Sequential):
    """A depthwise 3x3 convolution, a norm, then a pointwise 1x1 convolution to ``out_dim``:
    about ``9 / out_dim + 1 / 9`` of a full 3x3 convolution's multiply-adds."""

    def __init__(self, dim: int, out_dim: int, norm: str, norm_affine: bool | None) -> None:
        bias = conv_bias(norm)
        super().__init__(
            nn.Conv2d(dim, dim, 3, groups=dim, bias=bias),
            norm_layer(norm, dim, norm_affine),
            nn.Conv2d(dim, out_dim, 1, bias=bias),
        )


class ResnetBlock(nn.Module):
    """Two 3x3 convolutions with reflection padding and a residual connection.

    The first maps to ``inner`` channels (default ``dim``), the second back to ``dim``.
    ``separable`` makes both depthwise-separable: GAN Compression's mobile block.
    """

    def __init__(
        self,
        dim: int,
        norm: str,
        dropout: bool,
        norm_affine: bool | None = None,
        inner: int | None = None,
        separable: bool = False,
    ) -> None:
        super().__init__()
        inner = dim if inner is None else inner
        bias = conv_bias(norm)

        def conv(c_in: int, c_out: int) -> nn.Module:
            if separable:
                return SeparableConv(c_in, c_out, norm, norm_affine)
            return nn.Conv2d(c_in, c_out, 3, bias=bias)

        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            conv(dim, inner),
            norm_layer(norm, inner, norm_affine),
            nn.ReLU(True),
        ]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), conv(inner, dim), norm_layer(norm, dim, norm_affine)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def trunk_taps(model: nn.Sequential) -> list[int]:
    """:meth:`Generator.trunk_taps` of a generator whose tap points are the entries of
    ``model``: the entry before its first :class:`ResnetBlock`, then the blocks ``n/3``,
    ``2n/3`` and ``n`` (``[9, 12, 15, 18]`` in a 9-block ResNet)."""
    blocks = [i for i, m in enumerate(model) if isinstance(m, ResnetBlock)]
    if not blocks:
        return []
    n = len(blocks)
    return sorted({blocks[0] - 1, *(blocks[k * n // 3 - 1] for k in (1, 2, 3) if k * n >= 3)})


def stage_widths(ngf: int, widths: list[int] | None) -> list[int]:
    """Channel widths ``[stem, downsampled, residual, block inner]`` from ``ngf`` (``ngf``,
    ``2 ngf``, ``4 ngf``, ``4 ngf``) or from an explicit list of 3 or 4 widths; the decoder
    mirrors the encoder."""
    if widths is None:
        return [ngf, ngf * 2, ngf * 4, ngf * 4]
    widths = list(widths)
    if len(widths) not in (3, 4) or not all(isinstance(w, int) and w > 0 for w in widths):
        raise ValueError(
            "widths must be 3 or 4 positive integers (stem, downsampled, residual[, block "
            f"inner]); got {widths!r}"
        )
    return widths if len(widths) == 4 else [*widths, widths[2]]


class SequentialGenerator(Generator):
    """A generator that is one ``nn.Sequential``, ``model``: its tap points are the entries
    of ``model`` (a residual block is one, as the reference CUT counts them)."""

    def tap_points(self) -> list[nn.Module]:
        return list(self.model)

    def trunk_taps(self) -> list[int]:
        return trunk_taps(self.model)

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class ResnetGenerator(SequentialGenerator):
    """ResNet encoder-decoder (CycleGAN's): 7x7 stem, two stride-2 downsamplings,
    ``n_blocks`` residual blocks (depthwise-separable with ``mobile``, GAN Compression's
    students), two upsamplings; blurred (the CUT reference's default) with ``antialias``.

    Tap points are the entries of ``model`` (a residual block is one), as the reference CUT
    counts them. Without ``antialias`` (CycleGAN's layout, CUT's ``--no_antialias
    --no_antialias_up``) 0 is the padded input, 4 the first downsampling convolution, 8 the
    second downsampling's normalized output (rectified in place by layer 9) and 12, 16 the
    outputs of the third and seventh residual blocks. With ``antialias`` (the reference
    CUT's default: each downsampling a stride-1 convolution, norm, ReLU and a
    :class:`BlurDownsample`; each upsampling a :class:`BlurUpsample` before a stride-1
    convolution) 4 and 8 are the two downsampling convolutions at full and half resolution
    and 12, 16 the first and fifth residual blocks.

    ``mobile`` swaps the reference's full 3x3 residual blocks for separable ones;
    ``widths`` (see :func:`stage_widths`) replaces the ``ngf`` multiples per stage.
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
        mobile: bool = False,
        widths: list[int] | None = None,
        antialias: bool = False,
    ) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0; got {n_blocks}")
        stem, down, dim, inner = stage_widths(ngf, widths)
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, stem, 7, bias=bias),
            norm_layer(norm, stem, norm_affine),
            nn.ReLU(True),
        ]
        for ch_in, ch_out in ((stem, down), (down, dim)):
            layers += [
                nn.Conv2d(ch_in, ch_out, 3, stride=1 if antialias else 2, padding=1, bias=bias),
                norm_layer(norm, ch_out, norm_affine),
                nn.ReLU(True),
                *([BlurDownsample(ch_out)] if antialias else []),
            ]
        layers += [
            ResnetBlock(dim, norm, dropout, norm_affine, inner, separable=mobile)
            for _ in range(n_blocks)
        ]
        for ch_in, ch_out in ((dim, down), (down, stem)):
            if antialias:
                up = [BlurUpsample(ch_in), nn.Conv2d(ch_in, ch_out, 3, padding=1, bias=bias)]
            else:
                up = [nn.ConvTranspose2d(ch_in, ch_out, 3, 2, 1, output_padding=1, bias=bias)]
            layers += [*up, norm_layer(norm, ch_out, norm_affine), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(stem, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)


class ShuffleResnetGenerator(SequentialGenerator):
    """A real-time student: the image folded 4x into channels (``PixelUnshuffle``), a 3x3
    convolution, ``n_blocks`` separable residual blocks (the mobile ResNet's) at a quarter
    of the side, then two stages of a 3x3 convolution and a 2x ``PixelShuffle`` back.

    The mobile ResNet spends more than half its time in its full-resolution layers (the
    7x7 stem and head, 8 channels wide at ngf 8), which a CPU runs far below its peak; here
    no layer runs at full resolution. Unfolding in two stages, the second ``ngf`` channels
    wide at half the side, keeps the 4x4 pixel grid out of the output that one 16-way
    shuffle leaves. ``ngf`` sets the width as it does for the ResNet (blocks ``4 ngf``
    wide), so MAC-based width searches treat both alike. Tap points are the entries of
    ``model``: 3 the stem's output, then one per block.
    """

    size_multiple = 4  # PixelUnshuffle(4)

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_blocks: int = 6,
        norm: str = "instance",
        norm_affine: bool | None = None,
    ) -> None:
        super().__init__()
        dim = ngf * 4

        def conv(c_in: int, c_out: int, bias: bool = True) -> nn.Conv2d:
            return nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode="reflect", bias=bias)

        self.model = nn.Sequential(
            nn.PixelUnshuffle(4),
            conv(in_channels * 16, dim, conv_bias(norm)),
            norm_layer(norm, dim, norm_affine),
            nn.ReLU(True),
            *(ResnetBlock(dim, norm, False, norm_affine, separable=True) for _ in range(n_blocks)),
            conv(dim, ngf * 4),
            nn.PixelShuffle(2),
            nn.ReLU(True),
            conv(ngf, out_channels * 4),
            nn.PixelShuffle(2),
            nn.Tanh(),
        )


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
    """U-Net (pix2pix's): ``num_downs`` stride-2 levels with skip connections, so input
    sides must divide by ``2**num_downs``; 8 levels take 256x256 down to 1x1.

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
        if not 1 <= num_downs <= MAX_NUM_DOWNS:
            raise ValueError(
                f"num_downs: expected 1 to {MAX_NUM_DOWNS} (inputs are padded to a multiple "
                f"of 2**num_downs pixels), got {num_downs}"
            )
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
