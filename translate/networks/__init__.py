"""Networks: the zoo of generators, discriminators and upscalers built by name
(``build_generator``, ``build_discriminator``, the registries), their layers, feature taps and
inference-time normalisation (``eval_mode``). Plain ``nn.Module``s: imports ``core`` only,
nothing of data, models, training or inference."""

from __future__ import annotations

from translate.core.lazy import lazy_attributes
from translate.networks.registry import (
    DISCRIMINATORS,
    GENERATORS,
    build_discriminator,
    build_generator,
)

# The registries list every network without importing torch (a config is checked by them);
# what needs torch is loaded when first used.
_LAZY = {
    "Generator": "translate.networks.features",
    "count_macs": "translate.networks.macs",
    "count_parameters": "translate.networks.macs",
}

__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "Generator",
    "build_discriminator",
    "build_generator",
    "count_macs",
    "count_parameters",
]
