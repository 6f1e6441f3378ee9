"""CycleGAN (Zhu et al.): two generators, two discriminators, cycle and identity losses.

Naming follows the directions: ``G_AB`` maps A to B and ``D_B`` judges domain B (the
reference calls these G_A and D_A).

``loss.lambda_semantic`` adds CyCADA's semantic-consistency term to ``G_AB`` only (a frozen
task model trained on domain A keeps its labels on ``G_AB(A)``:
:mod:`translate.training.semantic`), logged as ``G_semantic``. ``G_BA`` has none: the task
model knows domain A's labels, not B's.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from translate.training.base import Stepper, Trainer, Validation, frozen, parameters
from translate.training.config import Config
from translate.training.image_pool import ImagePool
from translate.training.semantic import SemanticTrainer, semantic_term
from translate.training.specs.cyclegan import CycleGANSpec


class CycleGAN(CycleGANSpec, SemanticTrainer, Trainer):
    def __init__(self, config: Config, task_model: torch.nn.Module | None = None) -> None:
        super().__init__(config)
        a_ch, b_ch = config.data.input_channels, config.data.output_channels
        self.spec_ab = self.generator_spec(a_ch, b_ch)
        self.spec_ba = self.generator_spec(b_ch, a_ch)
        self.G_AB, self.G_BA = self.spec_ab.build(), self.spec_ba.build()
        self.D_A, self.D_B = self.build_discriminator(a_ch), self.build_discriminator(b_ch)
        size = config.discriminator.pool_size
        self.pool_a, self.pool_b = ImagePool(size), ImagePool(size)
        self.semantic = semantic_term(config, task_model)

    def optimizers(self) -> dict[str, tuple[list[torch.nn.Parameter], float]]:
        optim = self.config.optim
        return {
            "G": (parameters(self.G_AB, self.G_BA), optim.lr_g),
            "D": (parameters(self.D_A, self.D_B), optim.lr_d),
        }

    def generators(self) -> dict[str, tuple[Any, torch.nn.Module]]:
        return {"AtoB": (self.spec_ab, self.G_AB), "BtoA": (self.spec_ba, self.G_BA)}

    def train_step(
        self, batch: dict[str, Any], stepper: Stepper, update_g: bool = True
    ) -> dict[str, torch.Tensor]:
        real_a, real_b = batch["A"], batch["B"]
        loss = self.config.loss
        losses: dict[str, torch.Tensor] = {}
        with stepper.autocast(), torch.set_grad_enabled(update_g):
            fake_b, fake_a = self.G_AB(real_a), self.G_BA(real_b)

        if update_g:
            # Generators: fool both discriminators, come back around each cycle, and leave
            # images already in the target domain unchanged (identity).
            with frozen(self.D_A, self.D_B), stepper.autocast():
                gan_ab = self.adversarial_loss(
                    self.D_B, fake_b, self.real_prediction(self.D_B, real_b)
                )
                gan_ba = self.adversarial_loss(
                    self.D_A, fake_a, self.real_prediction(self.D_A, real_a)
                )
                cycle_a = F.l1_loss(self.G_BA(fake_b).float(), real_a.float()) * loss.lambda_a
                cycle_b = F.l1_loss(self.G_AB(fake_a).float(), real_b.float()) * loss.lambda_b
                identity = real_a.new_zeros(())
                if loss.lambda_identity > 0:
                    idt_b = F.l1_loss(self.G_AB(real_b).float(), real_b.float()) * loss.lambda_b
                    idt_a = F.l1_loss(self.G_BA(real_a).float(), real_a.float()) * loss.lambda_a
                    identity = (idt_a + idt_b) * loss.lambda_identity
                total = gan_ab + gan_ba + cycle_a + cycle_b + identity
                losses = {
                    "G_GAN": (gan_ab + gan_ba).detach(),
                    "G_cycle": (cycle_a + cycle_b).detach(),
                    "G_identity": identity.detach(),
                }
                if self.semantic is not None:
                    semantic = self.semantic(real_a, fake_b)
                    losses["G_semantic"] = semantic.detach()
                    total = total + semantic
            stepper.update("G", total)

        # Discriminators: real images against a mix of current and earlier fakes.
        with stepper.autocast():
            loss_d_b, _ = self.discriminator_loss(self.D_B, real_b, self.pool_b.query(fake_b))
            loss_d_a, _ = self.discriminator_loss(self.D_A, real_a, self.pool_a.query(fake_a))
        stepper.update("D", loss_d_a + loss_d_b)
        return {"D_A": loss_d_a.detach(), "D_B": loss_d_b.detach(), **losses}

    @torch.no_grad()
    def validate(self, batch: dict[str, Any]) -> Validation:
        real_a, real_b = batch["A"], batch["B"]
        fake_b, fake_a = self.G_AB(real_a).float(), self.G_BA(real_b).float()
        images = {"real_A": real_a, "fake_B": fake_b, "real_B": real_b, "fake_A": fake_a}
        # Without targets, the best generator is the one that comes back around each cycle
        # closest (unweighted L1, so lambda_a/lambda_b do not move the choice).
        cycle_a = F.l1_loss(self.G_BA(fake_b).float(), real_a.float())
        cycle_b = F.l1_loss(self.G_AB(fake_a).float(), real_b.float())
        losses = {"cycle_L1": ((cycle_a + cycle_b) / 2).item()}
        return Validation(images, fake_b, real_b, self.D_B(real_b), self.D_B(fake_b), losses)

    def extra_state(self) -> dict[str, Any]:
        return {"pool_a": self.pool_a.state_dict(), "pool_b": self.pool_b.state_dict()}

    def load_extra_state(self, state: dict[str, Any], device: torch.device) -> None:
        self.pool_a.load_state_dict(state["pool_a"], device)
        self.pool_b.load_state_dict(state["pool_b"], device)
