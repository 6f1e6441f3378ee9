"""SPADE (Park et al. 2019, GauGAN): a generator of images from label maps and a
conditional multiscale discriminator on (label map, image), with the hinge loss, feature
matching, the VGG loss when a local VGG19 file is given, and, where the generator has a
style encoder (``generator.options.style_dim``), codes of the target images drawn by
reparameterisation and a KL term that keeps them near the N(0, I) prior inference draws
from.

Validation shows the label map in its palette colours, the output and the target, and
scores the outputs against the targets (L1, PSNR, SSIM); with a style encoder each output
takes its target's style (the encoder's mean), as the paper's test-time encoding.
"""

from __future__ import annotations

from typing import Any

import torch

from translate.core import metrics
from translate.data.labels import colorize
from translate.training.base import Stepper, Trainer, Validation, frozen, label_scores
from translate.training.config import Config, label_count
from translate.training.models.pix2pix import conditional_pair
from translate.training.perceptual import perceptual_loss
from translate.training.specs.spade import SPADESpec


class SPADE(SPADESpec, Trainer):
    def __init__(self, config: Config) -> None:
        super().__init__(config)
        data, loss = config.data, config.loss
        classes = label_count(config)
        # one-hot classes, and the instance boundaries as one more channel
        in_ch, out_ch = classes + int(data.instances), data.output_channels
        self.spec = self.generator_spec(in_ch, out_ch)
        self.G = self.spec.build()
        self.D = self.build_discriminator(in_ch + out_ch)
        # a style encoder (SPADE's style_dim): codes of the targets in training, part of G
        # (its optimizer), trained by the same loss
        self.style = getattr(self.G, "noise_dim", 0) > 0 and hasattr(self.G, "style_posterior")
        self.palette = data.labels.palette(classes)
        perceptual = None
        if loss.perceptual_weights and loss.lambda_vgg > 0:
            perceptual = perceptual_loss(loss.perceptual_weights, loss.perceptual_layers)
        # Outside the module tree: frozen, so not in checkpoints, optimizers or the average.
        self.__dict__["perceptual"] = perceptual

    def train_step(
        self, batch: dict[str, Any], stepper: Stepper, update_g: bool = True
    ) -> dict[str, torch.Tensor]:
        labels, real = batch["input"], batch["target"]
        loss_cfg = self.config.loss
        with stepper.autocast(), torch.set_grad_enabled(update_g):
            z, loss_kld = None, None
            if self.style:
                mu, logvar = self.G.style_posterior(real)
                mu, logvar = mu.float(), logvar.float()
                z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
                kld = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1).mean()
                loss_kld = kld * loss_cfg.lambda_kld
            fake = self.G(labels) if z is None else self.G(labels, z)

        # Discriminator: real (label map, image) pairs against generated ones, hinge.
        with stepper.autocast():
            loss_d, pred_real = self.discriminator_loss(
                self.D, conditional_pair(labels, real), conditional_pair(labels, fake)
            )
        stepper.update("D", loss_d)
        if not update_g:
            return {"D": loss_d.detach()}

        # Generator: fool the updated D, match its features on the real pair, and the rest.
        out = {"D": loss_d.detach()}
        with frozen(self.D), stepper.autocast():
            loss_g = self.adversarial_loss(self.D, conditional_pair(labels, fake), pred_real)
            out["G_GAN"] = loss_g.detach()
            if self.perceptual is not None:
                perceptual = self.perceptual.to(real.device)  # the engine moves the module tree
                loss_vgg = perceptual(fake, real).float() * loss_cfg.lambda_vgg
                loss_g = loss_g + loss_vgg
                out["G_VGG"] = loss_vgg.detach()
        if loss_kld is not None:
            loss_g = loss_g + loss_kld
            out["G_KLD"] = loss_kld.detach()
        stepper.update("G", loss_g)
        return out

    @torch.no_grad()
    def validate(self, batch: dict[str, Any]) -> Validation:
        labels, real = batch["input"], batch["target"]
        fake = (self.G(labels, self.G.encode_style(real)) if self.style else self.G(labels)).float()
        d_real = self.D(conditional_pair(labels, real))
        d_fake = self.D(conditional_pair(labels, fake))
        images = {"input": colorize(labels, self.palette), "output": fake, "target": real}
        return Validation(images, fake, real, d_real, d_fake, labels=batch["labels"])

    def validation_scores(self) -> metrics.PairedScores:
        return label_scores(self.config)
