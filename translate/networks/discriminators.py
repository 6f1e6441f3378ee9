"""PatchGAN discriminators: n-layer (70x70 at 3 layers), pixel (1x1) and multi-scale; and
Real-ESRGAN's U-Net discriminator with spectral norm (one logit per pixel).

Each PatchGAN takes ``minibatch_stddev``: the :class:`MinibatchStdDev` channel before the
last layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from translate.networks.layers import BlurDownsample, MinibatchStdDev, conv_bias, norm_layer


class PatchDiscriminator(nn.Module):
    """PatchGAN: stride-2 4x4 convolutions, then two stride-1 ones: one logit per image
    patch (70x70 at ``n_layers=3``). With ``antialias`` (the CUT reference's default) each
    stride-2 convolution is a stride-1 one followed by a :class:`BlurDownsample`."""

    def __init__(
        self,
        in_channels: int,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "batch",
        minibatch_stddev: bool = False,
        antialias: bool = False,
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1; got {n_layers}")
        bias = conv_bias(norm)

        def down(c_in: int, c_out: int, with_bias: bool, *after: nn.Module) -> list[nn.Module]:
            """A stride-2 convolution, then ``after``; blurred: stride 1, ``after``, blur."""
            stride, blur = (1, [BlurDownsample(c_out)]) if antialias else (2, [])
            conv = nn.Conv2d(c_in, c_out, 4, stride=stride, padding=1, bias=with_bias)
            return [conv, *after, *blur]

        layers: list[nn.Module] = down(in_channels, ndf, True, nn.LeakyReLU(0.2, True))
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            after = (norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2, True))
            if n < n_layers:
                layers += down(ndf * prev, ndf * mult, bias, *after)
            else:
                layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, padding=1, bias=bias), *after]
        layers += _stddev_then(
            nn.Conv2d(ndf * mult + int(minibatch_stddev), 1, 4, padding=1), minibatch_stddev
        )
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The activation after every LeakyReLU, then the logits (for feature matching)."""
        outputs = []
        for layer in self.model:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                outputs.append(x)
        return outputs + [x]


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN: classifies every pixel on its own (colour statistics only)."""

    def __init__(
        self, in_channels: int, ndf: int = 64, norm: str = "batch", minibatch_stddev: bool = False
    ) -> None:
        super().__init__()
        bias = conv_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=bias),
            norm_layer(norm, ndf * 2),
            nn.LeakyReLU(0.2, True),
            *_stddev_then(
                nn.Conv2d(ndf * 2 + int(minibatch_stddev), 1, 1, bias=bias), minibatch_stddev
            ),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MultiscaleDiscriminator(nn.Module):
    """``num_scales`` PatchGANs on an image pyramid (pix2pixHD), with features for feature
    matching.

    ``forward`` returns, per scale (full resolution first), the list of intermediate
    features with the logits last; the GAN loss reads the logits, the feature-matching
    loss the rest.
    """

    def __init__(
        self,
        in_channels: int,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "batch",
        num_scales: int = 3,
        minibatch_stddev: bool = False,
    ) -> None:
        super().__init__()
        if num_scales < 1:
            raise ValueError(f"num_scales must be >= 1; got {num_scales}")
        self.scales = nn.ModuleList(
            PatchDiscriminator(in_channels, ndf, n_layers, norm, minibatch_stddev)
            for _ in range(num_scales)
        )
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        outputs = []
        for i, disc in enumerate(self.scales):
            if i:
                x = self.downsample(x)
            outputs.append(disc.features(x))
        return outputs


def _stddev_then(last: nn.Module, minibatch_stddev: bool) -> list[nn.Module]:
    """The last layer, after the minibatch standard-deviation channel when it is on (the
    layer's input channels count that channel)."""
    return [MinibatchStdDev(), last] if minibatch_stddev else [last]


# The keys of torch's parametrized spectral norm and of its older hook-based one, which
# upstream checkpoints were saved with.
_SN_KEYS = {
    "parametrizations.weight.original": "weight_orig",
    "parametrizations.weight.0._u": "weight_u",
    "parametrizations.weight.0._v": "weight_v",
}


def upstream_spectral_norm(conv: nn.Module) -> nn.Module:
    """``conv`` with spectral norm, saved and loaded under the keys of the hook-based
    ``torch.nn.utils.spectral_norm`` (``weight_orig``, ``weight_u``, ``weight_v``).

    The parametrized one is the same function of the same stored vectors in evaluation, and
    in training runs the same power iteration (updating u before v, the old one v before
    u); unlike the hook-based one it survives ``copy.deepcopy`` after a training step (the
    MAC counter copies networks).
    """
    conv = _spectral_norm(conv)

    def save(module: nn.Module, state: dict, prefix: str, metadata: dict) -> None:
        for ours, theirs in _SN_KEYS.items():
            state[prefix + theirs] = state.pop(prefix + ours)

    def load(state: dict, prefix: str, *args: object) -> None:
        for ours, theirs in _SN_KEYS.items():
            if prefix + theirs in state:
                state[prefix + ours] = state.pop(prefix + theirs)

    # The public names (register_state_dict_post_hook...) need torch 2.5; setup.cfg takes 2.4.
    conv._register_state_dict_hook(save)
    conv._register_load_state_dict_pre_hook(load)
    return conv


class UNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN's discriminator: a U-Net (three stride-2 4x4 convolutions down, three
    bilinear x2 upsamplings with a 3x3 convolution each, two more 3x3 convolutions) giving a
    real/fake logit per pixel, at the input's size; input sides a multiple of 8.
    ``skip_connection`` adds each encoder level to the decoder level of its size.

    Spectral norm on every convolution but the first and last; the state dict has
    upstream's keys (``convN.weight_orig``, ``weight_u``, ``weight_v``, see
    :func:`upstream_spectral_norm`), so ``RealESRGAN_x4plus_netD.pth`` loads strictly.
    """

    size_multiple = 8

    def __init__(self, in_channels: int, num_feat: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        self.skip_connection = skip_connection
        widths = [num_feat, num_feat * 2, num_feat * 4, num_feat * 8]

        def normed(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Module:
            return upstream_spectral_norm(nn.Conv2d(c_in, c_out, kernel, stride, 1, bias=False))

        self.conv0 = nn.Conv2d(in_channels, num_feat, 3, 1, 1)
        for i in range(1, 4):  # down: conv1..conv3
            self.add_module(f"conv{i}", normed(widths[i - 1], widths[i], 4, 2))
        for i in range(4, 7):  # up: conv4..conv6, back to the encoder's widths
            self.add_module(f"conv{i}", normed(widths[7 - i], widths[6 - i], 3, 1))
        self.conv7 = normed(num_feat, num_feat, 3, 1)
        self.conv8 = normed(num_feat, num_feat, 3, 1)
        self.conv9 = nn.Conv2d(num_feat, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.conv0(x), 0.2)
        skips = [x]
        for conv in (self.conv1, self.conv2, self.conv3):
            x = F.leaky_relu(conv(x), 0.2)
            skips.append(x)
        skips.pop()  # the bottom level has no decoder level of its size
        for conv in (self.conv4, self.conv5, self.conv6):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = F.leaky_relu(conv(x), 0.2)
            skip = skips.pop()
            if self.skip_connection:
                x = x + skip
        x = F.leaky_relu(self.conv7(x), 0.2)
        x = F.leaky_relu(self.conv8(x), 0.2)
        return self.conv9(x)
