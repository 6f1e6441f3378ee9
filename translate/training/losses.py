"""GAN objectives (vanilla, LSGAN, hinge, WGAN-GP), registered by name, and the
feature-matching loss.

Every loss takes what a discriminator returns: a tensor of logits, or (multiscale) a list
per scale of feature lists whose last entry is the logits; scales are averaged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from translate.training.objectives import OBJECTIVES, check_gp_weight, objective_options

Prediction = torch.Tensor | list[list[torch.Tensor]]


def _logits(prediction: Prediction) -> list[torch.Tensor]:
    if isinstance(prediction, torch.Tensor):
        return [prediction]
    return [scale[-1] for scale in prediction]


class GANObjective(nn.Module):
    """A GAN objective: its loss, its decision threshold and its penalty on D, in one class.

    ``objective(prediction, target_is_real, for_discriminator=True)`` averages :meth:`loss`
    over the scales of a prediction, in fp32. A subclass defines :meth:`loss` and the class
    attribute ``threshold`` (where D's output splits real from fake, for the monitor's
    accuracies), optionally :meth:`penalty`, and is listed in ``OBJECTIVES``
    (:mod:`translate.training.objectives`); a
    ``ValueError`` from its constructor starts with the option's name.
    """

    threshold: ClassVar[float]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Checked when the class is defined, not at the first evaluation of a run.
        threshold = getattr(cls, "threshold", None)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise TypeError(
                f"GAN objective {cls.__name__}: set the class attribute 'threshold', the "
                "value of D's output between fake and real (0.0 for logits, 0.5 for 0/1 targets)"
            )
        if cls.loss is GANObjective.loss:
            raise TypeError(
                f"GAN objective {cls.__name__}: define loss(logits, real, for_discriminator)"
            )

    def loss(self, logits: torch.Tensor, real: bool, for_discriminator: bool) -> torch.Tensor:
        """The loss of one fp32 logits tensor labelled ``real``; ``for_discriminator`` is
        False for the generator's loss (which passes ``real=True``)."""
        raise NotImplementedError

    def penalty(
        self,
        discriminator: Callable[[torch.Tensor], Prediction],
        real: torch.Tensor,
        fake: torch.Tensor,
    ) -> torch.Tensor | None:
        """A term added to the discriminator's loss, or None for none."""
        return None

    def forward(
        self, prediction: Prediction, target_is_real: bool, for_discriminator: bool = True
    ) -> torch.Tensor:
        losses = [
            self.loss(x.float(), target_is_real, for_discriminator) for x in _logits(prediction)
        ]
        return torch.stack(losses).mean()


def _target(x: torch.Tensor, real: bool) -> torch.Tensor:
    return torch.ones_like(x) if real else torch.zeros_like(x)


def _signed_mean(x: torch.Tensor, real: bool) -> torch.Tensor:
    return -x.mean() if real else x.mean()


class Vanilla(GANObjective):
    """The original GAN's cross-entropy on logits."""

    threshold = 0.0

    def loss(self, logits: torch.Tensor, real: bool, for_discriminator: bool) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, _target(logits, real))


class LSGAN(GANObjective):
    """Least squares: D regresses real to 1 and fake to 0."""

    threshold = 0.5

    def loss(self, logits: torch.Tensor, real: bool, for_discriminator: bool) -> torch.Tensor:
        return F.mse_loss(logits, _target(logits, real))


class Hinge(GANObjective):
    """Hinge for D; the generator's loss is ``-D(fake)``, not a hinge."""

    threshold = 0.0

    def loss(self, logits: torch.Tensor, real: bool, for_discriminator: bool) -> torch.Tensor:
        if not for_discriminator:
            return _signed_mean(logits, real)
        return F.relu(1 - logits).mean() if real else F.relu(1 + logits).mean()


class WGANGP(GANObjective):
    """Wasserstein critic scores plus the gradient penalty, weighted by ``gp_weight``."""

    # The critic's offset is arbitrary, so accuracies around 0 are only a rough guide.
    threshold = 0.0

    def __init__(self, gp_weight: float = 10.0) -> None:
        super().__init__()
        check_gp_weight(gp_weight)
        self.gp_weight = gp_weight

    def loss(self, logits: torch.Tensor, real: bool, for_discriminator: bool) -> torch.Tensor:
        return _signed_mean(logits, real)

    def penalty(
        self,
        discriminator: Callable[[torch.Tensor], Prediction],
        real: torch.Tensor,
        fake: torch.Tensor,
    ) -> torch.Tensor:
        return gradient_penalty(discriminator, real, fake, self.gp_weight)


def GANLoss(mode: str = "lsgan", **options: Any) -> GANObjective:
    """The objective registered as ``mode`` (``vanilla``, ``lsgan``, ``hinge``, ``wgangp``...),
    built with ``options``; unknown names and options raise ``ValueError`` listing valid ones.
    A function under the class name it had before objectives were registered classes."""
    return OBJECTIVES.build(mode, **options)


def objective_for(loss: Any) -> GANObjective:
    """The objective a config's ``loss`` section names as ``gan_mode``, each constructor option
    taken from the section's key of the same name where it has one (wgangp: ``gp_weight``)."""
    return GANLoss(loss.gan_mode, **objective_options(loss))


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
