"""pix2pixHD (Wang et al. 2018): a coarse-to-fine generator, a conditional multi-scale
discriminator, LSGAN, feature matching and, given a local VGG19 file, a perceptual loss.

Input: label maps (``data.label_nc`` set: one-hot classes, plus instance boundaries with
``data.instances``) or images (paired folders, the paper's edges-to-photos). The schedule
(``loss.global_steps``, ``loss.fix_global_steps``) is a function of the step this trainer
has taken, which it checkpoints, so a resumed run is in the stage it left: the global
generator alone on inputs and targets brought to its resolution, then the whole network
with the global generator frozen, then the whole.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from translate.core import metrics
from translate.data.labels import colorize
from translate.models.model_file import GeneratorSpec
from translate.networks.registry import GENERATORS
from translate.training.base import Stepper, Trainer, Validation, frozen, label_scores
from translate.training.config import Config
from translate.training.models.pix2pix import conditional_pair
from translate.training.perceptual import perceptual_loss
from translate.training.specs.pix2pixhd import Pix2PixHDSpec

GLOBAL, FIXED_GLOBAL, WHOLE = "global", "fixed_global", "whole"


class Pix2PixHD(Pix2PixHDSpec, Trainer):
    def __init__(self, config: Config) -> None:
        super().__init__(config)
        d, g, loss = config.data, config.generator, config.loss
        labels = d.label_nc is not None
        in_ch = d.label_nc + int(d.instances) if labels else d.input_channels
        options = dict(g.options)
        if "input_kind" in GENERATORS.options(g.name):  # pix2pixhd's takes either
            options["input_kind"] = "labels" if labels else "image"
        self.spec = GeneratorSpec.declared(g.name, in_ch, d.output_channels, options)
        # one optimizer over the whole G: Adam leaves alone the parameters a stage gives no
        # gradient (the enhancers while the global trains, and the reverse)
        self.G = self.spec.build()
        self.D = self.build_discriminator(in_ch + d.output_channels)
        perceptual = None
        if loss.perceptual_weights and loss.lambda_perceptual > 0:
            perceptual = perceptual_loss(loss.perceptual_weights, loss.perceptual_layers)
        # Outside the module tree: frozen, so not in checkpoints, optimizers or the average.
        self.__dict__["perceptual"] = perceptual
        self.steps = 0  # train_step calls so far: what the schedule follows

    def stage(self, step: int | None = None) -> str:
        """The stage of the schedule at the 0-based ``step`` (default: the next one)."""
        loss, step = self.config.loss, self.steps if step is None else step
        if step < loss.global_steps:
            return GLOBAL
        if step < loss.global_steps + loss.fix_global_steps:
            return FIXED_GLOBAL
        return WHOLE

    def initialize(self, batch: dict[str, Any]) -> None:
        """Refuse, in one line before step 1, images too small for the discriminator's
        coarsest scale at the smallest size the schedule gives it (torch's own error names
        no key)."""
        stage = GLOBAL if self.config.loss.global_steps else WHOLE
        real_a, real_b = self._inputs(batch, stage)
        was_training = self.D.training
        try:
            with torch.no_grad():
                self.D.eval()(conditional_pair(real_a, real_b))
        except ValueError as exc:
            if "more than 1 value per channel" not in str(exc):
                raise
            size = "x".join(map(str, real_b.shape[-2:]))
            where = " (the global stage's half size)" if stage == GLOBAL else ""
            raise ValueError(
                f"config key 'data.preprocess.crop_size': the discriminator sees {size} px "
                f"pairs{where}, too small for its normalised layers at its coarsest scale; "
                "use larger images or fewer discriminator.options.num_scales"
            ) from None
        finally:
            self.D.train(was_training)

    def _inputs(self, batch: dict[str, Any], stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's input and target: at the global generator's resolution in its stage."""
        real_a, real_b = batch["input"], batch["target"]
        if stage == GLOBAL:
            return self.G.downsample(real_a), self.G.downsample(real_b)
        return real_a, real_b

    def train_step(
        self, batch: dict[str, Any], stepper: Stepper, update_g: bool = True
    ) -> dict[str, torch.Tensor]:
        stage = self.stage()
        self.steps += 1
        real_a, real_b = self._inputs(batch, stage)
        fixed = contextlib.nullcontext()
        if stage == FIXED_GLOBAL:  # the global generator, its output layer included, settled
            fixed = frozen(self.G.global_net, self.G.global_out)
        with fixed:
            with stepper.autocast(), torch.set_grad_enabled(update_g):
                fake_b = self.G.global_only(real_a) if stage == GLOBAL else self.G(real_a)

            # Discriminator: real pairs against generated pairs, at every scale.
            with stepper.autocast():
                loss_d, pred_real = self.discriminator_loss(
                    self.D, conditional_pair(real_a, real_b), conditional_pair(real_a, fake_b)
                )
            stepper.update("D", loss_d)
            if not update_g:
                return {"D": loss_d.detach()}

            # Generator: fool the updated discriminator, match its features on real pairs.
            losses = {}
            with frozen(self.D), stepper.autocast():
                losses["G_GAN"] = self.adversarial_loss(
                    self.D, conditional_pair(real_a, fake_b), pred_real
                )
                if self.perceptual is not None:
                    perceptual = self.perceptual.to(fake_b.device)  # outside the module tree
                    losses["G_VGG"] = (
                        perceptual(fake_b.float(), real_b.float())
                        * self.config.loss.lambda_perceptual
                    )
            stepper.update("G", sum(losses.values()))
        return {"D": loss_d.detach(), **{k: v.detach() for k, v in losses.items()}}

    @torch.no_grad()
    def validate(self, batch: dict[str, Any]) -> Validation:
        """The whole network's outputs, whatever the stage: they are what the generator file
        holds, so ``generator_best`` is a network that works at full resolution. While the
        global generator trains alone, the grid adds its own outputs (``global``)."""
        real_a, real_b = batch["input"], batch["target"]
        fake_b = self.G(real_a).float()
        d_real = self.D(conditional_pair(real_a, real_b))
        d_fake = self.D(conditional_pair(real_a, fake_b))
        d = self.config.data
        shown = colorize(real_a, d.labels.palette(d.label_nc)) if d.label_nc else real_a
        images = {"input": shown, "output": fake_b, "target": real_b}
        if self.steps and self.stage(self.steps - 1) == GLOBAL:  # the step just taken
            images["global"] = self.G.global_only(self.G.downsample(real_a)).float()
        return Validation(images, fake_b, real_b, d_real, d_fake, labels=batch.get("labels"))

    def validation_scores(self) -> metrics.PairedScores:
        return label_scores(self.config)

    def extra_state(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_extra_state(self, state: dict[str, Any], device: torch.device) -> None:
        self.steps = int(state["steps"])
