"""CUT and FastCUT (Park et al., contrastive unpaired translation): one generator, one
discriminator and a PatchNCE loss that ties each output patch to the input patch it came from.

Patches are compared in the generator's own encoder: the same feature taps
(``G(x, layers=[...])``) of the input and of the output, sampled at the same positions,
projected by a small MLP per layer (sized from the first batch) and scored with InfoNCE
against the other patches of the same image. ``loss.mode`` picks the reference's settings:
``cut`` (lambda_nce 1, identity NCE on domain B) or ``fastcut`` (no identity term,
flip-equivariance augmentation; lambda_nce 1 too, where the reference has 10). The
generator file is an ordinary ``AtoB`` one.
``loss.lambda_semantic`` adds CyCADA's semantic-consistency term (a frozen task model's
labels kept on the translation: :mod:`translate.training.semantic`), logged as ``G_semantic``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from translate.networks.registry import GENERATORS
from translate.training.base import Stepper, Trainer, Validation, frozen, parameters
from translate.training.config import Config
from translate.training.semantic import SemanticTrainer, semantic_term
from translate.training.specs.cut import CUTSpec


def patch_nce_loss(
    query: torch.Tensor, key: torch.Tensor, batch_size: int, temperature: float
) -> torch.Tensor:
    """InfoNCE over patches, as the reference's ``PatchNCELoss``: the mean over patches of
    cross-entropy where patch ``i`` of the output (``query``) must pick patch ``i`` of the
    input (``key``, no gradient) among the input's other patches of the same image.

    ``query`` and ``key`` are ``(batch_size * patches, dim)`` rows, image by image. The
    positive appears twice in the logits, first and (masked to -10) among the negatives.
    """
    query, key = query.float(), key.detach().float()
    dim = query.shape[1]
    positive = (query * key).sum(1, keepdim=True)
    query, key = query.view(batch_size, -1, dim), key.view(batch_size, -1, dim)
    negatives = torch.bmm(query, key.transpose(1, 2))
    diagonal = torch.eye(negatives.shape[1], dtype=torch.bool, device=query.device)
    negatives = negatives.masked_fill(diagonal, -10.0).flatten(0, 1)
    logits = torch.cat([positive, negatives], 1) / temperature
    targets = torch.zeros(logits.shape[0], dtype=torch.long, device=query.device)
    return F.cross_entropy(logits, targets)


class PatchSampler(nn.Module):
    """Samples feature-map positions and projects them with one MLP per layer (Linear,
    ReLU, Linear), L2-normalised: the reference's ``PatchSampleF`` (``mlp_sample``)."""

    def __init__(self, channels: list[int], units: int) -> None:
        super().__init__()
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(c, units), nn.ReLU(), nn.Linear(units, units)) for c in channels
        )

    def forward(
        self, features: list[torch.Tensor], num_patches: int, ids: list[torch.Tensor] | None = None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Rows ``(batch * patches, units)`` per layer, and the positions sampled (the same
        for every image of the batch; pass them back to sample the output alike)."""
        rows, chosen = [], []
        for i, (feature, mlp) in enumerate(zip(features, self.mlps, strict=True)):
            flat = feature.flatten(2).transpose(1, 2)  # (batch, positions, channels)
            if ids is None:
                index = torch.randperm(flat.shape[1], device=flat.device)[:num_patches]
            else:
                index = ids[i]
            row = mlp(flat[:, index].flatten(0, 1))
            rows.append(F.normalize(row.float(), dim=1, eps=1e-7))
            chosen.append(index)
        return rows, chosen


class CUT(CUTSpec, SemanticTrainer, Trainer):
    def __init__(self, config: Config, task_model: nn.Module | None = None) -> None:
        super().__init__(config)
        a_ch, b_ch = config.data.input_channels, config.data.output_channels
        self.spec = self.generator_spec(a_ch, b_ch)
        self.G = self.spec.build()
        self.D = self.build_discriminator(b_ch)
        self.F: PatchSampler | None = None  # sized from the first batch (initialize)
        self.semantic = semantic_term(config, task_model)

    def initialize(self, batch: dict[str, Any]) -> None:
        loss = self.config.loss
        self.G.eval()  # no batch-norm statistics from this look at the channel counts
        try:
            with torch.no_grad():
                features = self.G(batch["A"], layers=loss.nce_layers)
        except ValueError as exc:
            raise ValueError(f"config key 'loss.nce_layers': {exc}") from None
        finally:
            self.G.train()
        self.F = PatchSampler([f.shape[1] for f in features], loss.mlp_units)
        g = self.config.generator
        GENERATORS.finish_like(self.F, g.name, g.options)  # the generator's init

    def optimizers(self) -> dict[str, tuple[list[nn.Parameter], float]]:
        optim = self.config.optim
        return {
            "G": (parameters(self.G), optim.lr_g),
            "F": (parameters(self.F), optim.lr_g),
            "D": (parameters(self.D), optim.lr_d),
        }

    def nce_loss(self, source: torch.Tensor, output: torch.Tensor, flipped: bool) -> torch.Tensor:
        """PatchNCE between ``source`` and what G made of it, averaged over the layers
        (unweighted: ``loss.lambda_nce`` is the caller's).

        With flip-equivariance the output came from the mirrored source; its features are
        mirrored back so that patch positions match. The keys take no gradient (the loss
        detaches them, as the reference does), so they are computed without a graph.
        """
        loss = self.config.loss
        with torch.no_grad():
            key_rows, ids = self.F(self.G(source, layers=loss.nce_layers), loss.num_patches)
        query = self.G(output, layers=loss.nce_layers)
        if flipped:
            query = [q.flip(3) for q in query]
        query_rows, _ = self.F(query, loss.num_patches, ids)
        terms = [
            patch_nce_loss(q, k, source.shape[0], loss.nce_t)
            for q, k in zip(query_rows, key_rows, strict=True)
        ]
        return torch.stack(terms).mean()

    def train_step(
        self, batch: dict[str, Any], stepper: Stepper, update_g: bool = True
    ) -> dict[str, torch.Tensor]:
        real_a, real_b = batch["A"], batch["B"]
        loss = self.config.loss
        n = real_a.shape[0]
        # One generator pass for the translation and (CUT) the identity image G(B).
        real = torch.cat([real_a, real_b]) if loss.nce_idt else real_a
        flipped = bool(loss.flip_equivariance and torch.rand(()) < 0.5)
        if flipped:
            real = real.flip(3)
        with stepper.autocast(), torch.set_grad_enabled(update_g):
            fake = self.G(real)
        fake_b = fake[:n]  # mirrored when flipped, as the reference shows D

        with stepper.autocast():
            loss_d, pred_real = self.discriminator_loss(self.D, real_b, fake_b)
        stepper.update("D", loss_d)
        if not update_g:
            return {"D": loss_d.detach()}

        with frozen(self.D), stepper.autocast():
            gan = self.adversarial_loss(self.D, fake_b, pred_real) * loss.lambda_gan
            losses, total = {"G_GAN": gan.detach()}, gan
            if loss.lambda_nce > 0:
                nce = self.nce_loss(real_a, fake_b, flipped) * loss.lambda_nce
                losses["G_NCE"] = nce.detach()
                if loss.nce_idt:
                    nce_idt = self.nce_loss(real_b, fake[n:], flipped) * loss.lambda_nce
                    losses["G_NCE_idt"] = nce_idt.detach()
                    nce = (nce + nce_idt) * 0.5
                total = gan + nce
            if self.semantic is not None:
                # of the translation as D sees it: mirrored back to match real_a
                semantic = self.semantic(real_a, fake_b.flip(3) if flipped else fake_b)
                losses["G_semantic"] = semantic.detach()
                total = total + semantic
        stepper.update(("G", "F"), total)
        return {"D": loss_d.detach(), **losses}

    @torch.no_grad()
    def validate(self, batch: dict[str, Any]) -> Validation:
        real_a, real_b = batch["A"], batch["B"]
        fake_b = self.G(real_a).float()
        images = {"real_A": real_a, "fake_B": fake_b, "real_B": real_b}
        # Without targets, the best generator keeps each output patch closest to its input
        # patch: the unweighted PatchNCE loss. Its patch positions are drawn on a forked RNG
        # so that validating leaves training's random stream (and exact resume) alone.
        with torch.random.fork_rng(devices=[real_a.device] if real_a.is_cuda else []):
            losses = {"NCE": self.nce_loss(real_a, fake_b, flipped=False).item()}
        return Validation(images, fake_b, real_b, self.D(real_b), self.D(fake_b), losses)
