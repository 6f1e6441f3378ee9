"""Pix2Pix's spec: paired data, L1 to the target beside the GAN term (the trainer:
:mod:`translate.training.models.pix2pix`)."""

from __future__ import annotations

from dataclasses import dataclass

from translate.training.config import LossConfig
from translate.training.specs import TRAINERS, TrainerSpec


@dataclass
class Pix2PixLoss(LossConfig):
    lambda_l1: float = 100.0  # weight of the L1 distance to the target


@TRAINERS.declare_spec("pix2pix", "translate.training.models.pix2pix:Pix2Pix")
class Pix2PixSpec(TrainerSpec):
    data = "paired"
    Loss = Pix2PixLoss
    defaults = {
        "generator": {"name": "unet_256", "options": {"norm": "batch", "dropout": True}},
        "discriminator": {"name": "patch", "options": {"norm": "batch"}},
    }
