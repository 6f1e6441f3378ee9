"""Small pieces shared by the generators and discriminators: norm layers, weight init, the
anti-aliased (blurred) resampling of the CUT reference and the minibatch standard-deviation
feature."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

NORMS = ("batch", "instance", "none")
INITS = ("normal", "xavier", "kaiming", "orthogonal")


def check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{option} must be one of {', '.join(choices)}; got {value!r}")


class InstanceNorm2d(nn.InstanceNorm2d):
    """Instance norm computed as group norm with one channel per group: the same function
    and parameters (``weight``, ``bias``), but PyTorch's CPU group-norm kernel runs about 4x
    faster than its instance norm on NCHW tensors and over 10x faster on channels-last ones,
    which the converter uses (16 x 256 x 256 features, one thread, AMD EPYC with AVX2).

    The channels-last kernel shares work across the batch, so an image's result would
    change in the last float bit with its batch mates (and a grey level could flip): there
    each image is normalized on its own, which keeps most of the speed."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        exporting = torch.jit.is_scripting() or torch.jit.is_tracing()  # one graph for any batch
        if x.shape[0] > 1 and x.is_contiguous(memory_format=torch.channels_last) and not exporting:
            return torch.cat([self._normalize(image) for image in x.split(1)])
        return self._normalize(x)

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, self.num_features, self.weight, self.bias, self.eps)


def norm_layer(norm: str, channels: int, affine: bool | None = None) -> nn.Module:
    """The reference's norm choices: batch norm is affine, instance norm is not (by default).

    ``affine`` overrides the default; forks of the reference code often train affine
    instance norm, and loading their checkpoints needs the same layers.
    """
    check_choice("norm", norm, NORMS)
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True if affine is None else affine)
    if norm == "instance":
        return InstanceNorm2d(channels, affine=bool(affine), track_running_stats=False)
    return nn.Identity()


def conv_bias(norm: str) -> bool:
    """Convolutions before a batch norm need no bias: the norm's shift replaces it."""
    return norm != "batch"


def on_meta(net: nn.Module) -> bool:
    """Whether ``net`` was built on the meta device (model_file.check_weights' shape check).
    Initialisers skip such a network: its tensors hold no values, and a random fill of a meta
    tensor imports torch._dynamo, 1.5 s of every model load."""
    return any(p.is_meta for p in net.parameters())


def init_weights(
    net: nn.Module, init: str = "normal", init_gain: float = 0.02, spectral_norm: bool = False
) -> nn.Module:
    """Initialise convolutions as the reference code does (N(0, 0.02) by default); then, with
    ``spectral_norm``, put spectral norm on every 2-d convolution (the registries' finish)."""
    check_choice("init", init, INITS)
    if not on_meta(net):
        for module in net.modules():
            if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
                # Spectral norm moves the weight to a parametrization; init the original.
                weight = getattr(module, "parametrizations", None)
                weight = weight.weight.original if weight is not None else module.weight
                if init == "normal":
                    nn.init.normal_(weight, 0.0, init_gain)
                elif init == "xavier":
                    nn.init.xavier_normal_(weight, gain=init_gain)
                elif init == "kaiming":
                    nn.init.kaiming_normal_(weight, a=0, mode="fan_in")
                else:
                    nn.init.orthogonal_(weight, gain=init_gain)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d) and module.affine:
                nn.init.normal_(module.weight, 1.0, init_gain)
                nn.init.zeros_(module.bias)
    if spectral_norm:
        for module in list(net.modules()):
            for name, child in list(module.named_children()):
                if isinstance(child, nn.Conv2d):
                    setattr(module, name, _spectral_norm(child))
    return net


def binomial_filter(taps: int) -> torch.Tensor:
    """The ``taps x taps`` binomial kernel (row ``C(taps-1, k)``, outer product), summing to 1."""
    row = torch.tensor([float(math.comb(taps - 1, k)) for k in range(taps)])
    kernel = torch.outer(row, row)
    return kernel / kernel.sum()


class BlurDownsample(nn.Module):
    """Halves the resolution after a 3x3 binomial blur (reflection padded), channel by
    channel: Zhang's anti-aliased downsampling, which the CUT reference puts after each
    stride-1 convolution where CycleGAN has a stride-2 one. The kernel is a buffer named
    ``filt``, as in the reference's state dicts, so those load key for key."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("filt", binomial_filter(3).expand(channels, 1, 3, 3).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (1, 1, 1, 1), mode="reflect")
        return F.conv2d(x, self.filt.to(x.dtype), stride=2, groups=x.shape[1])


class BlurUpsample(nn.Module):
    """Doubles the resolution with a fixed 4x4 binomial transposed convolution (edges
    replicated), channel by channel: the CUT reference's upsampling before a stride-1
    convolution, in place of a learned transposed convolution and its checkerboard. Each
    output pixel mixes its 2x2 nearest inputs with weights 9/16, 3/16, 3/16, 1/16."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # x4: a stride-2 transposed convolution spreads each input over 4 outputs
        self.register_buffer("filt", (binomial_filter(4) * 4).expand(channels, 1, 4, 4).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (1, 1, 1, 1), mode="replicate")
        y = F.conv_transpose2d(x, self.filt.to(x.dtype), stride=2, padding=2, groups=x.shape[1])
        return y[:, :, 1:-1, 1:-1]  # 2 (H + 1) rows; the first and last sit on the padding


class MinibatchStdDev(nn.Module):
    """Appends one channel holding how much the batch varies, as in progressive GANs.

    The standard deviation of every feature at every position over the batch, averaged
    into one number per batch: a discriminator that sees it can tell a generator's
    collapsed batch (all alike) from a real one. A batch of one, or of identical samples,
    gives the same constant channel (about 0), so the feature only acts when the batch varies.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Float32 statistics: bf16 under autocast loses small spreads. The epsilon keeps
        # the square root's gradient finite where the batch does not vary.
        var = x.float().var(dim=0, correction=0)
        std = torch.sqrt(var + 1e-8).mean().to(x.dtype)
        return torch.cat([x, std.expand(x.shape[0], 1, *x.shape[2:])], dim=1)
