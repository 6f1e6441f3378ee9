"""OASIS (Schönfeld et al. 2021): a label-map generator taught by a segmentation
discriminator, which labels each pixel of an image with its class or "fake".

Class 0 of the discriminator's ``label_nc + 1`` logits is fake; real class ``c`` is logit
``c + 1``. D learns real pixels as their classes and generated pixels as fake; G learns to
have its pixels labelled with the input's classes. Both real-class terms weight each pixel
by the inverse of its class's share of the batch, so small classes count as much as large
ones. LabelMix adds to D's loss the distance between its logits on a real and a generated
image mixed class by class and the same mix of its logits on the two.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from translate.core import metrics
from translate.data.labels import colorize
from translate.networks import build_discriminator
from translate.training.base import Stepper, Trainer, Validation, frozen, label_scores
from translate.training.config import Config, label_count
from translate.training.specs.oasis import OASISSpec

D_MULTIPLE = 64  # OASIS's discriminator halves the sides six times


class OASIS(OASISSpec, Trainer):
    def __init__(self, config: Config) -> None:
        super().__init__(config)
        data, d = config.data, config.discriminator
        self.label_nc = label_count(config)
        self.palette = data.labels.palette(self.label_nc)
        in_ch = self.label_nc + int(data.instances)  # the instance edges: one more channel
        self.spec = self.generator_spec(in_ch, data.output_channels)
        self.G = self.spec.build()
        self.D = build_discriminator(
            d.name, data.output_channels, classes=self.label_nc + 1, **d.options
        )

    def initialize(self, batch: dict[str, Any]) -> None:
        side = batch["target"].shape[-2:]
        if side[0] % D_MULTIPLE or side[1] % D_MULTIPLE:
            raise ValueError(
                f"{self.config.data.source()}: images come out {tuple(side)} but OASIS's "
                f"discriminator needs sides divisible by {D_MULTIPLE}; set "
                f"data.preprocess.crop_size (or size_multiple) to a multiple of {D_MULTIPLE}"
            )

    def train_step(
        self, batch: dict[str, Any], stepper: Stepper, update_g: bool = True
    ) -> dict[str, torch.Tensor]:
        maps, real = batch["input"], batch["target"]
        hot = maps[:, : self.label_nc]
        with stepper.autocast(), torch.set_grad_enabled(update_g):
            fake = self.G(maps)

        # Discriminator: real pixels as their classes, generated ones as fake, and LabelMix.
        with stepper.autocast():
            pred_real, pred_fake = self.D(real), self.D(fake.detach())
            loss_real = segmentation_loss(pred_real, hot, real=True)
            loss_fake = segmentation_loss(pred_fake, hot, real=False)
            losses = {"D_real": loss_real, "D_fake": loss_fake}
            weight = self.config.loss.lambda_labelmix
            if weight > 0:
                mixed, mask = labelmix(hot, real, fake.detach())
                losses["D_LabelMix"] = weight * labelmix_loss(
                    self.D(mixed), pred_real, pred_fake, mask
                )
        stepper.update("D", sum(losses.values()))
        losses = {k: v.detach() for k, v in losses.items()}
        if not update_g:
            return losses

        # Generator: have the updated discriminator label its pixels with the input's classes.
        with frozen(self.D), stepper.autocast():
            loss_g = segmentation_loss(self.D(fake), hot, real=True)
        stepper.update("G", loss_g)
        return {**losses, "G_GAN": loss_g.detach()}

    @torch.no_grad()
    def validate(self, batch: dict[str, Any]) -> Validation:
        maps, real = batch["input"], batch["target"]
        # One fixed code per image position, so that scores compare across evaluations and
        # validation draws nothing from the RNG that training (and its resume) follows.
        noise_dim = getattr(self.G, "noise_dim", 0)
        if noise_dim:
            seeded = torch.Generator().manual_seed(0)
            z = torch.randn(maps.shape[0], noise_dim, generator=seeded).to(maps.device)
            fake = self.G(maps, z).float()
        else:
            fake = self.G(maps).float()
        images = {"input": colorize(maps, self.palette), "output": fake, "target": real}
        d_real, d_fake = realness(self.D(real)), realness(self.D(fake))
        return Validation(images, fake, real, d_real, d_fake, labels=batch["labels"])

    def validation_scores(self) -> metrics.PairedScores:
        return label_scores(self.config)


def class_balance(hot: torch.Tensor) -> torch.Tensor:
    """Each pixel's weight ``(N, H, W)`` for one-hot maps ``(N, C, H, W)``: the inverse of
    its class's share of the batch's labelled pixels, over the number of classes present
    (``pixels / (present * count[c])``), so each present class weighs the same in total
    and the weights average 1 over the labelled pixels; unlabelled pixels (all zeros)
    weigh 0. The paper's weights, which divide all pixels instead."""
    counts = hot.float().sum((0, 2, 3))
    present = (counts > 0).sum()
    coefficients = torch.where(counts > 0, counts.sum() / (present * counts.clamp(min=1)), 0.0)
    return torch.einsum("nchw,c->nhw", hot.float(), coefficients)


def segmentation_loss(logits: torch.Tensor, hot: torch.Tensor, real: bool) -> torch.Tensor:
    """The N+1-class cross entropy of D's ``logits`` ``(N, C + 1, H, W)``: ``real``, each
    pixel as its class of ``hot`` (logit class + 1), weighted by :func:`class_balance`
    (the discriminator on real images, the generator on its own); else every pixel as fake
    (logit 0), unweighted."""
    logits = logits.float()
    if not real:
        fake = torch.zeros(logits.shape[0], *logits.shape[2:], dtype=torch.long)
        return F.cross_entropy(logits, fake.to(logits.device))
    entropy = F.cross_entropy(logits, hot.argmax(1) + 1, reduction="none")
    return (entropy * class_balance(hot)).mean()


def labelmix(
    hot: torch.Tensor, real: torch.Tensor, fake: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """LabelMix's image and mask ``(N, 1, H, W)``: each class of each image taken whole
    from ``real`` or from ``fake`` by a fair coin (torch's global RNG; unlabelled pixels
    from ``fake``)."""
    coins = torch.randint(0, 2, hot.shape[:2], device=hot.device).to(real.dtype)
    mask = (hot.to(real.dtype) * coins[:, :, None, None]).sum(1, keepdim=True)
    return mask * real + (1 - mask) * fake, mask


def labelmix_loss(
    pred_mixed: torch.Tensor, pred_real: torch.Tensor, pred_fake: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean squared distance of D's logits on the mixed image from the same mix of its
    logits on the real and the generated one."""
    mixed = mask * pred_real.float() + (1 - mask) * pred_fake.float()
    return F.mse_loss(pred_mixed.float(), mixed)


def realness(logits: torch.Tensor) -> torch.Tensor:
    """The logit of "some real class" against "fake" per pixel ``(N, 1, H, W)``, above 0
    where D calls the pixel real: what the monitor's accuracies read."""
    logits = logits.float()
    return logits[:, 1:].logsumexp(1, keepdim=True) - logits[:, :1]
