"""Pix2Pix (Isola et al.): a generator and a conditional discriminator on (input, output)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from translate.core import metrics
from translate.training.base import Stepper, Trainer, Validation, frozen
from translate.training.config import Config
from translate.training.specs.pix2pix import Pix2PixSpec


class Pix2Pix(Pix2PixSpec, Trainer):
    def __init__(self, config: Config) -> None:
        super().__init__(config)
        in_ch, out_ch = config.data.input_channels, config.data.output_channels
        self.spec = self.generator_spec(in_ch, out_ch)
        self.G = self.spec.build()
        self.D = self.build_discriminator(in_ch + out_ch)

    def train_step(
        self, batch: dict[str, Any], stepper: Stepper, update_g: bool = True
    ) -> dict[str, torch.Tensor]:
        real_a, real_b = batch["input"], batch["target"]
        with stepper.autocast(), torch.set_grad_enabled(update_g):
            fake_b = self.G(real_a)

        # Discriminator: real pairs against generated pairs.
        with stepper.autocast():
            loss_d, pred_real = self.discriminator_loss(
                self.D, conditional_pair(real_a, real_b), conditional_pair(real_a, fake_b)
            )
        stepper.update("D", loss_d)
        if not update_g:
            return {"D": loss_d.detach()}

        # Generator: fool the updated discriminator and stay close to the target.
        with frozen(self.D), stepper.autocast():
            loss_gan = self.adversarial_loss(self.D, conditional_pair(real_a, fake_b), pred_real)
            loss_l1 = F.l1_loss(fake_b.float(), real_b.float()) * self.config.loss.lambda_l1
        stepper.update("G", loss_gan + loss_l1)
        return {"D": loss_d.detach(), "G_GAN": loss_gan.detach(), "G_L1": loss_l1.detach()}

    @torch.no_grad()
    def validate(self, batch: dict[str, Any]) -> Validation:
        real_a, real_b = batch["input"], batch["target"]
        fake_b = self.G(real_a).float()
        d_real = self.D(conditional_pair(real_a, real_b))
        d_fake = self.D(conditional_pair(real_a, fake_b))
        images = {"input": real_a, "output": fake_b, "target": real_b}
        return Validation(images, fake_b, real_b, d_real, d_fake)

    def validation_scores(self) -> metrics.PairedScores:
        return metrics.PairedScores()


def conditional_pair(condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """The discriminator's input: the condition beside the image, the condition brought to
    the image's size where the generator's output is a multiple of its input's."""
    if condition.shape[-2:] != image.shape[-2:]:
        condition = F.interpolate(condition, size=image.shape[-2:], mode="nearest")
    return torch.cat([condition, image], 1)
