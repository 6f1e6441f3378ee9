"""Networks: the zoo of generators (SPADE's for label maps in ``spade``), discriminators and
upscalers built by name (``build_generator``, ``build_discriminator``, the registries), their
layers, feature taps and inference-time normalisation (``eval_mode``). Plain ``nn.Module``s:
imports ``core`` only, nothing of data, models, training or inference."""

from __future__ import annotations

from typing import Any

from torch import nn

from translate.networks import discriminators, generators, spade, upscalers  # noqa: F401  (fills the registries)
from translate.networks.features import Generator
from translate.networks.macs import count_macs
from translate.networks.registry import DISCRIMINATORS, GENERATORS


def build_generator(
    name: str, in_channels: int = 3, out_channels: int = 3, **options: Any
) -> nn.Module:
    """A generator from the zoo, e.g. ``build_generator("unet_256", norm="instance")``.

    Names: ``resnet_9blocks``/``resnet_6blocks`` and ``mobile_resnet_9blocks``/
    ``mobile_resnet_6blocks`` (``n_blocks``, ``widths``, ``mobile``), ``unet_256``/``unet_128``
    (``num_downs``). Options: ``ngf``, ``norm``, ``norm_affine``, ``dropout``, ``init``,
    ``init_gain``. Super-resolution (``scale`` x the input, pixels in [-1, 1] like the rest):
    ``rrdbnet`` (``num_feat``, ``num_block``, ``num_grow_ch``) and ``srvgg_compact``
    (``num_feat``, ``num_conv``, ``act``). Label maps to images: ``spade`` (``in_channels``
    one-hot classes; ``num_upsampling``, ``hidden``, ``norm``, ``spectral_norm``). The
    module's ``size_multiple`` is the multiple its input sides must be; ``G(x, layers=[...])``
    returns feature maps (see :class:`Generator`).
    """
    return GENERATORS.build(name, in_channels=in_channels, out_channels=out_channels, **options)


def build_discriminator(name: str, in_channels: int, **options: Any) -> nn.Module:
    """A discriminator from the zoo: ``patch`` (alias ``basic``), ``pixel`` or ``multiscale``
    (options ``ndf``, ``n_layers``, ``norm``, ``num_scales``, ``spectral_norm``, ``init``,
    ``init_gain``), or ``unet_sn``, Real-ESRGAN's (``num_feat``, ``skip_connection``).
    """
    return DISCRIMINATORS.build(name, in_channels=in_channels, **options)


def count_parameters(net: nn.Module) -> int:
    """The number of parameters of ``net`` (trainable or not)."""
    return sum(p.numel() for p in net.parameters())


__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "Generator",
    "build_discriminator",
    "build_generator",
    "count_macs",
    "count_parameters",
]
