"""Super-resolution generators of Real-ESRGAN (Wang et al., 2021): ESRGAN's RRDB network
(RRDBNet, Wang et al., 2018) and the compact real-time network (SRVGGNetCompact).

Module names and nesting follow the upstream code, so a state dict from Real-ESRGAN or
spandrel loads with ``load_state_dict(strict=True)`` and ours loads there. Upstream networks
read and write pixels in [0, 1]; the zoo's generators take and return [-1, 1], so
:meth:`Generator.generate` converts at both ends and the weights stay upstream's.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from translate.networks.features import Generator
from translate.networks.layers import check_choice, on_meta

ACTIVATIONS = ("prelu", "relu", "leakyrelu")


def check_scale(scale: int, choices: tuple[int, ...] | None = None) -> None:
    """``scale`` must be a positive integer (one of ``choices`` where the network has few)."""
    if scale < 1 or (choices is not None and scale not in choices):
        allowed = ", ".join(map(str, choices)) if choices else "a positive integer"
        raise ValueError(f"scale must be {allowed}; got {scale!r}")


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], the range upstream weights were trained on."""
    return (x + 1) * 0.5


class FromUnit(nn.Module):
    """[0, 1] -> [-1, 1]: the output's conversion, a module (without parameters, so no
    state-dict keys) so the output is the last tap point."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 - 1


SKIPS = ("nearest", "bilinear", "bicubic")
SR_INITS = ("default", "kaiming")


class UpsampledResidual(nn.Module):
    """The compact network's output: the upsampled residual plus the input upsampled by
    ``mode`` (upstream: ``nearest``).

    Upstream adds them in [0, 1]; here the residual is in [0, 1] units and the input in
    [-1, 1], and ``2 * (residual + up(to_unit(x))) - 1 == 2 * residual + up(x)`` for every
    mode, as interpolation is linear. A module (without parameters, so no state-dict keys) so
    the output is the last tap point.
    """

    def __init__(self, scale: int, mode: str = "nearest") -> None:
        super().__init__()
        check_choice("skip", mode, SKIPS)
        self.scale, self.mode = scale, mode

    def forward(self, residual: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        corners = None if self.mode == "nearest" else False
        up = F.interpolate(x, scale_factor=float(self.scale), mode=self.mode, align_corners=corners)
        return 2 * residual + up


def _activation(act: str, channels: int) -> nn.Module:
    if act == "prelu":
        return nn.PReLU(num_parameters=channels)
    if act == "relu":
        return nn.ReLU(inplace=True)
    return nn.LeakyReLU(negative_slope=0.1, inplace=True)


class SRVGGNetCompact(Generator):
    """Real-ESRGAN's compact network: ``num_conv`` 3x3 convolutions at ``num_feat`` channels
    on the low-resolution image, a pixel shuffle to ``scale`` x, and the input upsampled by
    ``skip`` added, so the body learns the residual. Keys ``body.N.*`` as upstream;
    ``realesr-general-x4v3`` is ``num_conv=32``, the anime video model ``num_conv=16``.

    The default layout is upstream's; two options change how it starts and what it adds:

    - ``skip``: ``nearest`` (upstream), ``bilinear`` or ``bicubic``. A nearest skip starts
      training from a blocky image the body must learn to smooth; narrow bodies (the demo's)
      never fully do and leave a ``scale``-pixel grid on smooth areas.
    - ``init``: ``kaiming`` (the default) or ``default`` (PyTorch's, upstream's). PyTorch's
      default shrinks the signal about 5x in variance per PReLU layer, so the body's output
      starts as its last biases, independent of the input, and training sits on a plateau
      (the output equal to the skip) for about 1,000 iterations at lr 2e-4. ``kaiming`` keeps
      the variance through the body (He et al.'s gain for the activation's slope) and zeroes
      the last convolution, so training starts exactly at the skip with every layer already
      passing the input on. Loaded weights replace either.
    """

    upstream_layout = True

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        scale: int = 4,
        act: str = "prelu",
        skip: str = "nearest",
        init: str = "kaiming",
    ) -> None:
        super().__init__()
        check_scale(scale)
        check_choice("act", act, ACTIVATIONS)
        check_choice("init", init, SR_INITS)
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
        self.residual = UpsampledResidual(scale, skip)
        if init == "kaiming" and not on_meta(self):
            self._init_kaiming(act)

    def _init_kaiming(self, act: str) -> None:
        convs = [m for m in self.body if isinstance(m, nn.Conv2d)]
        slope = {"prelu": 0.25, "relu": 0.0, "leakyrelu": 0.1}[act]  # PReLU's initial slope
        for conv in convs[:-1]:
            nn.init.kaiming_normal_(conv.weight, a=slope, nonlinearity="leaky_relu")
            nn.init.zeros_(conv.bias)
        nn.init.zeros_(convs[-1].weight)
        nn.init.zeros_(convs[-1].bias)

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        out = to_unit(x)
        for layer in self.body:
            out = layer(out)
        return self.residual(self.upsampler(out), x)


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convolutions, each fed every earlier feature map (dense connections), the
    last scaled by 0.2 and added to the input."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        for i in range(1, 5):
            self.add_module(
                f"conv{i}", nn.Conv2d(num_feat + (i - 1) * num_grow_ch, num_grow_ch, 3, 1, 1)
            )
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        # ESRGAN's initialisation: Kaiming, scaled by 0.1, so the deep residual stack starts
        # close to the identity.
        for conv in (
            () if on_meta(self) else (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5)
        ):
            nn.init.kaiming_normal_(conv.weight)
            with torch.no_grad():
                conv.weight.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Written out, not looped over a tuple of modules: TorchScript (export) needs that.
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        return self.conv5(torch.cat((x, x1, x2, x3, x4), 1)) * 0.2 + x


class RRDB(nn.Module):
    """Residual in residual dense block: three dense blocks, scaled by 0.2, plus the input."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


# Real-ESRGAN's x2 and x1 models fold the input into 4x and 16x the channels first (a pixel
# unshuffle), so the body always runs the x4 network at a quarter of the output's side.
UNSHUFFLE = {4: 1, 2: 2, 1: 4}


class RRDBNet(Generator):
    """ESRGAN's generator as Real-ESRGAN writes it (``RealESRGAN_x4plus``: the defaults):
    ``num_block`` RRDBs at ``num_feat`` channels, growth ``num_grow_ch``, a long skip, two
    nearest x2 upsamplings with a convolution each, then ``conv_hr`` and ``conv_last``.
    ``scale`` 2 and 1 pixel-unshuffle the input by 2 and 4 (input sides a multiple of that).
    Keys ``conv_first``, ``body.N.rdbM.convK``, ``conv_body``, ``conv_up1``, ``conv_up2``,
    ``conv_hr``, ``conv_last`` as upstream; :func:`rrdbnet_state_from_esrgan` reads the
    original ESRGAN layout (``model.N``) that spandrel's class uses."""

    upstream_layout = True

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
        scale: int = 4,
    ) -> None:
        super().__init__()
        check_scale(scale, tuple(UNSHUFFLE))
        self.scale = scale
        self.size_multiple = UNSHUFFLE[scale]
        self.conv_first = nn.Conv2d(in_channels * self.size_multiple**2, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, out_channels, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        self.to_output = FromUnit()

    def tap_points(self) -> list[nn.Module]:
        # The shared LeakyReLU runs three times; each RRDB counts as one point.
        return [
            self.conv_first,
            *self.body,
            self.conv_body,
            self.conv_up1,
            self.conv_up2,
            self.conv_hr,
            self.conv_last,
            self.to_output,
        ]

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        feat = to_unit(x)
        if self.size_multiple > 1:
            feat = F.pixel_unshuffle(feat, self.size_multiple)
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2.0, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2.0, mode="nearest")))
        return self.to_output(self.conv_last(self.lrelu(self.conv_hr(feat))))


# The original ESRGAN layout (spandrel's class) -> Real-ESRGAN's, for a network with a x4 body.
_ESRGAN_KEYS = {
    r"model\.0\.": "conv_first.",
    r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.": r"body.\1.rdb\2.conv\3.",
    r"model\.3\.": "conv_up1.",
    r"model\.6\.": "conv_up2.",
    r"model\.8\.": "conv_hr.",
    r"model\.10\.": "conv_last.",
}


def rrdbnet_state_from_esrgan(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict in the original ESRGAN layout (``model.0``, ``model.1.sub.N.RDBk``...),
    as spandrel's ``ESRGAN`` class holds it, in :class:`RRDBNet`'s keys; ``ValueError``
    naming the first key that has no place there (another upsampling depth, ESRGAN+)."""
    blocks = {int(m[1]) for k in state if (m := re.match(r"model\.1\.sub\.(\d+)\.", k))}
    trunk = f"model.1.sub.{max(blocks, default=0)}."
    converted = {}
    for key, value in state.items():
        new = key.replace(trunk, "conv_body.") if key.startswith(trunk) else None
        for pattern, replacement in _ESRGAN_KEYS.items():
            if new is None and re.match(pattern, key):
                new = re.sub(pattern, replacement, key)
        if new is None:
            raise ValueError(f"{key}: not a key of ESRGAN's x4 RRDB layout")
        converted[new] = value
    return converted
