"""Super-resolution (ESRGAN / Real-ESRGAN's recipe): a generator ``scale`` times its input's
size, trained on L1 to the HR target, optionally a perceptual loss, and a GAN.

Data: paired LR/HR folders (``A/`` LR, ``B/`` HR at ``scale`` times; the crop counts HR
pixels there too) or HR images alone, when ``data.degradation`` names how to make their LR
inputs (``bicubic``, ``realesrgan``; :mod:`translate.data.degradations`). Those are made in
the training step, on the run's device and in batch, each item from its own seed (the
dataset's ``seed``: run seed, epoch, index), so a resumed run sees the same LR inputs.

The two stages of the recipe are one config each: ``configs/sr_psnr.yaml`` (L1 only,
``loss.lambda_gan: 0``: no discriminator) and ``configs/sr_gan.yaml`` (GAN fine-tuning,
the generator started from the first stage's run with ``loss.pretrained``).

Validation scores PSNR and SSIM on the Y channel with ``scale`` border pixels cropped
(:class:`translate.core.metrics.SRScores`); the best generator is the highest PSNR-Y, and the
first evaluation scores bicubic upscaling of the same inputs as the baseline to beat.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from translate.core import metrics
from translate.data.degradations import bicubic_upscale, build_degradation
from translate.models.loading import load_model, resolve_model_path
from translate.training.base import Stepper, Trainer, Validation, frozen, parameters
from translate.training.config import Config
from translate.training.perceptual import perceptual_loss
from translate.training.specs.sr import USM_TERMS, SRSpec


class SuperResolution(SRSpec, Trainer):
    def __init__(self, config: Config) -> None:
        super().__init__(config)
        data, loss = config.data, config.loss
        self.spec = self.generator_spec(data.input_channels, data.output_channels)
        self.scale = self.spec.scale
        self.G = self.spec.build()
        if loss.pretrained:
            self._load_pretrained(loss.pretrained)
        self.D = self.build_discriminator(data.output_channels) if loss.lambda_gan > 0 else None
        self.degradation = (
            build_degradation(data.degradation, self.scale, **data.degradation_options)
            if data.degradation is not None
            else None
        )
        perceptual = None
        if loss.lambda_perceptual > 0:
            perceptual = perceptual_loss(loss.perceptual_weights, loss.perceptual_layers)
        # Outside the module tree: frozen, so not in checkpoints, optimizers or the average.
        self.__dict__["perceptual"] = perceptual

    def _load_pretrained(self, source: str) -> None:
        """Start G from the generator of ``source`` (a file, run directory or checkpoint)."""
        key = "config key 'loss.pretrained'"
        try:
            file = load_model(resolve_model_path(source))
        except (OSError, ValueError, RuntimeError) as exc:  # their messages start with the path
            raise ValueError(f"{key}: {exc}") from None
        where = f"{key}: {source}"
        if len(file.generators) != 1:
            raise ValueError(f"{where}: holds {', '.join(file.generators)}; SR has one generator")
        ((direction, spec),) = file.specs.items()
        mine = (self.spec.name, self.spec.in_channels, self.spec.out_channels, self.spec.options)
        theirs = (spec.name, spec.in_channels, spec.out_channels, spec.options)
        if mine != theirs:
            raise ValueError(
                f"{where}: holds {spec.name} {spec.options} ({spec.in_channels} to "
                f"{spec.out_channels} channels), this run trains {self.spec.name} "
                f"{self.spec.options}; set generator: to the file's network"
            )
        self.G.load_state_dict(file.generators[direction].state_dict())

    def optimizers(self) -> dict[str, tuple[list[torch.nn.Parameter], float]]:
        optim = self.config.optim
        nets = {"G": (parameters(self.G), optim.lr_g)}
        if self.D is not None:
            nets["D"] = (parameters(self.D), optim.lr_d)
        return nets

    @torch.no_grad()
    def low_resolution(self, batch: dict[str, Any]) -> torch.Tensor:
        """The batch's LR input: the paired one, or its HR target degraded per item's seed."""
        if self.degradation is None:
            return batch["input"]
        hr = (batch["target"].float() + 1) / 2
        return self.degradation(hr, batch["seed"]) * 2 - 1

    def train_step(
        self, batch: dict[str, Any], stepper: Stepper, update_g: bool = True
    ) -> dict[str, torch.Tensor]:
        loss_cfg = self.config.loss
        hr, lr = batch["target"], self.low_resolution(batch)
        with stepper.autocast(), torch.set_grad_enabled(update_g):
            sr = self.G(lr)
        sharp = usm_sharpen(hr) if loss_cfg.usm_target else hr
        target = {t: sharp if t in loss_cfg.usm_target else hr for t in USM_TERMS}
        out: dict[str, torch.Tensor] = {}
        if self.D is not None:
            with stepper.autocast():
                loss_d, _ = self.discriminator_loss(self.D, target["gan"], sr)
            stepper.update("D", loss_d)
            out["D"] = loss_d.detach()
        if not update_g:
            return out

        with frozen(*[net for net in (self.D,) if net is not None]), stepper.autocast():
            # halved: the L1 of [0, 1] images, which BasicSR's weights are for
            loss_l1 = F.l1_loss(sr.float(), target["l1"].float()) / 2 * loss_cfg.lambda_l1
            loss_g = loss_l1
            out["G_L1"] = loss_l1.detach()
            if self.perceptual is not None:
                perceptual = self.perceptual.to(hr.device)  # the engine moves the module tree
                loss_p = perceptual(sr, target["perceptual"]).float() * loss_cfg.lambda_perceptual
                loss_g = loss_g + loss_p
                out["G_perceptual"] = loss_p.detach()
            if self.D is not None:
                loss_gan = self.adversarial_loss(self.D, sr).float() * loss_cfg.lambda_gan
                loss_g = loss_g + loss_gan
                out["G_GAN"] = loss_gan.detach()
        stepper.update("G", loss_g)
        return out

    @torch.no_grad()
    def validate(self, batch: dict[str, Any]) -> Validation:
        hr, lr = batch["target"], self.low_resolution(batch)
        sr = self.G(lr).float()
        d_real = self.D(hr) if self.D is not None else None
        d_fake = self.D(sr) if self.D is not None else None
        images = {"input": lr, "output": sr, "target": hr}
        return Validation(images, sr, hr, d_real, d_fake, baseline=bicubic_upscale(lr, self.scale))

    def validation_scores(self) -> metrics.SRScores:
        return metrics.SRScores(border=self.scale)


@torch.no_grad()
def usm_sharpen(
    images: torch.Tensor, side: int = 51, weight: float = 0.5, threshold: float = 10
) -> torch.Tensor:
    """Unsharp masking as Real-ESRGAN sharpens its HR targets (BasicSR's ``USMSharp``, whose
    ``radius=50`` is made the odd side 51), on NCHW images in [-1, 1]: ``weight`` times the
    detail a ``side`` x ``side`` Gaussian blur (sigma as OpenCV derives it from the side)
    removes is added back where it exceeds ``threshold`` grey levels, blended in by the
    blurred mask. Images need sides above ``side // 2`` (reflected borders)."""
    from kornia.filters import gaussian_blur2d  # kornia only when targets are sharpened

    sigma = 0.3 * ((side - 1) * 0.5 - 1) + 0.8  # cv2.getGaussianKernel(side, 0)'s

    def blur(x: torch.Tensor) -> torch.Tensor:
        return gaussian_blur2d(x, side, (sigma, sigma), border_type="reflect")

    unit = (images.float() + 1) / 2
    residual = unit - blur(unit)
    mask = blur((residual.abs() * 255 > threshold).float())
    sharp = (unit + weight * residual).clamp(0, 1)
    return (mask * sharp + (1 - mask) * unit) * 2 - 1
