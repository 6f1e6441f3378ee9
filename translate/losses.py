"""GAN objectives (vanilla, LSGAN, hinge, WGAN-GP) and the feature-matching loss.

Every loss takes what a discriminator returns: a tensor of logits, or (multiscale) a list
per scale of feature lists whose last entry is the logits; scales are averaged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

GAN_MODES = ("vanilla", "lsgan", "hinge", "wgangp")

Prediction = torch.Tensor | list[list[torch.Tensor]]


def _logits(prediction: Prediction) -> list[torch.Tensor]:
    if isinstance(prediction, torch.Tensor):
        return [prediction]
    return [scale[-1] for scale in prediction]


class GANLoss(nn.Module):
    """``loss(prediction, target_is_real, for_discriminator=True)``, computed in fp32.

    ``for_discriminator`` only matters for hinge, whose generator loss is ``-D(fake)``
    rather than a hinge; the other modes use one formula for both networks.
    """

    def __init__(self, mode: str = "lsgan") -> None:
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"GAN loss mode must be one of {', '.join(GAN_MODES)}; got {mode!r}")
        self.mode = mode

    def _single(self, x: torch.Tensor, real: bool, for_discriminator: bool) -> torch.Tensor:
        x = x.float()
        if self.mode == "vanilla":
            target = torch.ones_like(x) if real else torch.zeros_like(x)
            return F.binary_cross_entropy_with_logits(x, target)
        if self.mode == "lsgan":
            target = torch.ones_like(x) if real else torch.zeros_like(x)
            return F.mse_loss(x, target)
        if self.mode == "hinge" and for_discriminator:
            return F.relu(1 - x).mean() if real else F.relu(1 + x).mean()
        return -x.mean() if real else x.mean()  # wgangp, and hinge's generator loss

    def forward(
        self, prediction: Prediction, target_is_real: bool, for_discriminator: bool = True
    ) -> torch.Tensor:
        losses = [self._single(x, target_is_real, for_discriminator) for x in _logits(prediction)]
        return torch.stack(losses).mean()


def gradient_penalty(
    discriminator: Callable[[torch.Tensor], Prediction],
    real: torch.Tensor,
    fake: torch.Tensor,
    weight: float = 10.0,
    constant: float = 1.0,
) -> torch.Tensor:
    """WGAN-GP: ``weight * (||grad D(x)|| / constant - 1)^2`` at random mixes of real and fake."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    outputs = _logits(discriminator(mixed))
    total = sum(out.float().sum() for out in outputs)
    (grad,) = torch.autograd.grad(total, mixed, create_graph=True)
    norm = grad.float().flatten(1).add(1e-16).norm(2, dim=1)
    return weight * ((norm / constant - 1) ** 2).mean()


def feature_matching_loss(
    real_features: list[list[torch.Tensor]], fake_features: list[list[torch.Tensor]]
) -> torch.Tensor:
    """Mean L1 between the discriminator's intermediate features on real and fake inputs.

    Averaged over scales and layers; the logits (last entry per scale) are left out and
    the real features are detached, so only the generator is pushed.
    """
    losses = [
        F.l1_loss(fake.float(), real.detach().float())
        for real_scale, fake_scale in zip(real_features, fake_features, strict=True)
        for real, fake in zip(real_scale[:-1], fake_scale[:-1], strict=True)
    ]
    if not losses:
        raise ValueError(
            "feature matching needs intermediate features (a multiscale discriminator)"
        )
    return torch.stack(losses).mean()
