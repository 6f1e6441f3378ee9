"""OASIS's spec: label maps, the N+1-class segmentation loss and LabelMix (the trainer:
:mod:`translate.training.models.oasis`)."""

from __future__ import annotations

from dataclasses import dataclass

from translate.data.layout import LABELS
from translate.training.config import Config, LossConfig
from translate.training.specs import TRAINERS, TrainerSpec


@dataclass
class OASISLoss(LossConfig):
    # weight of LabelMix: D's logits on a class-wise mix of a real and a generated image
    # against the same mix of its logits on the two (the paper's 10); 0: off
    lambda_labelmix: float = 10.0


@TRAINERS.declare_spec("oasis", "translate.training.models.oasis:OASIS")
class OASISSpec(TrainerSpec):
    data = LABELS
    Loss = OASISLoss
    # The paper's: its generator and segmentation discriminator, Adam 1e-4 / 4e-4 with
    # betas (0, 0.999), and the generator's weights averaged with decay 0.9999.
    defaults = {
        "generator": {"name": "oasis"},
        "discriminator": {"name": "oasis"},
        "optim": {"lr_g": 1e-4, "lr_d": 4e-4, "beta1": 0.0, "beta2": 0.999},
        "train": {"ema": 0.9999},
    }

    @classmethod
    def check_config(cls, config: Config) -> None:
        loss, d = config.loss, config.discriminator
        if loss.lambda_labelmix < 0:
            raise ValueError(
                f"config key 'loss.lambda_labelmix': must be 0 or more, got {loss.lambda_labelmix}"
            )
        # Its own loss replaces the GAN objectives, and D's targets are the input's pixels.
        refused = {
            "loss.gan_mode": (loss.gan_mode, "vanilla"),
            "loss.feature_matching": (loss.feature_matching, 0.0),
            "discriminator.name": (d.name, "oasis"),
            "discriminator.pool_size": (d.pool_size, 0),
            "discriminator.diff_augment": (d.diff_augment, ""),
        }
        for key, (value, wanted) in refused.items():
            if value != wanted:
                raise ValueError(
                    f"config key {key!r}: {value!r}, but OASIS's discriminator labels each "
                    "pixel of an image with its class or fake (its loss, no GAN objective); "
                    f"leave it at {wanted!r}"
                )
        if "classes" in d.options:
            raise ValueError(
                "config key 'discriminator.options.classes': set by the trainer to "
                "data.label_nc + 1 (the classes and fake); remove it"
            )
