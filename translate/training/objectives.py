"""The GAN objectives by name (``loss.gan_mode``): their listing, read without torch so that
a config is checked before any is imported; the classes are in
:mod:`translate.training.losses`."""

from __future__ import annotations

from typing import Any

from translate.networks.registry import Registry

# loss.gan_mode -> objective class; constructor options are set from the loss keys of the
# same name (objective_options).
OBJECTIVES = Registry("GAN objective")
OBJECTIVES.declare("translate.training.losses:Vanilla", "vanilla")
OBJECTIVES.declare("translate.training.losses:LSGAN", "lsgan")
OBJECTIVES.declare("translate.training.losses:Hinge", "hinge")
OBJECTIVES.declare("translate.training.losses:WGANGP", "wgangp")


def objective_options(loss: Any) -> dict[str, Any]:
    """The constructor options of the objective a ``loss`` section names as ``gan_mode``,
    each taken from the section's key of the same name where it has one (wgangp:
    ``gp_weight``)."""
    return {k: getattr(loss, k) for k in OBJECTIVES.options(loss.gan_mode) if hasattr(loss, k)}


def check_gp_weight(gp_weight: float) -> None:
    """WGAN-GP's option: checked by its constructor and, without torch, by the config."""
    if gp_weight < 0:
        raise ValueError(
            f"gp_weight: must be 0 or more (the weight of WGAN-GP's gradient penalty), "
            f"got {gp_weight}"
        )
