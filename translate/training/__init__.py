"""Training: YAML configs, the engine, the trainers (Pix2Pix, CycleGAN, CUT/FastCUT,
distillation, super-resolution), their losses and GAN objectives, checkpoints, run reports
and the ``train``/``distill`` commands. Imports ``core``, ``networks``, ``data`` and
``models`` (a teacher or a pretrained generator is loaded there); never ``inference`` or
anything above it."""

from __future__ import annotations

from translate.core.lazy import lazy_attributes

# Loaded when first used, as in translate/__init__.py: they import torch, which
# `translate train --help` (translate.training.cli, inside this package) never needs.
_LAZY = {
    "Config": "translate.training.config",
    "from_dict": "translate.training.configure",
    "load_config": "translate.training.configure",
    "Engine": "translate.training.engine",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = ["Config", "Engine", "from_dict", "load_config"]
