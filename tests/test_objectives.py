"""GAN objectives: the built-in ones give the numbers of their definitions bit for bit, and a
new one is one registered class that the trainers, the config and the monitor all take."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from training_helpers import make_engine, tiny

from translate import GANLoss, gradient_penalty
from translate.training.configure import from_dict
from translate.training.losses import GANObjective
from translate.training.objectives import OBJECTIVES

MODES = ("vanilla", "lsgan", "hinge", "wgangp")

pytestmark = pytest.mark.usefixtures("one_thread")


def _definition(mode: str, x: torch.Tensor, real: bool, for_discriminator: bool) -> torch.Tensor:
    """Each objective written out as its paper defines it, on one logits tensor in fp32."""
    x = x.float()
    target = torch.ones_like(x) if real else torch.zeros_like(x)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(x, target)
    if mode == "lsgan":
        return F.mse_loss(x, target)
    if mode == "hinge" and for_discriminator:
        return F.relu(1 - x).mean() if real else F.relu(1 + x).mean()
    return -x.mean() if real else x.mean()


def _averaged(mode: str, prediction, real: bool, for_discriminator: bool = True) -> torch.Tensor:
    logits = [prediction] if isinstance(prediction, torch.Tensor) else [s[-1] for s in prediction]
    return torch.stack([_definition(mode, x, real, for_discriminator) for x in logits]).mean()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_builtin_objectives_are_bit_identical_to_their_definitions(
    mode: str, dtype: torch.dtype
) -> None:
    torch.manual_seed(0)
    single = (torch.randn(3, 1, 5, 5) * 3).to(dtype)
    scales = [[torch.randn(3, 4, 8, 8), torch.randn(3, 1, 6, 6).to(dtype)], [single]]
    loss = GANLoss(mode)
    for prediction in (single, scales):
        for real in (True, False):
            for for_d in (True, False):
                got = loss(prediction, real, for_discriminator=for_d)
                assert torch.equal(got, _averaged(mode, prediction, real, for_d)), (real, for_d)


@pytest.mark.parametrize("mode", MODES)
def test_trainer_gan_losses_are_bit_identical_to_their_definitions(
    data: Path,
    tmp_path: Path,
    mode: str,
) -> None:
    """The discriminator's loss (halved, plus WGAN-GP's penalty at the same random mixes)
    and the generator's, as a pix2pix trainer computes them."""
    model = make_engine(tiny("pix2pix", data, loss={"gan_mode": mode}), tmp_path).model
    torch.manual_seed(1)
    real, fake = torch.rand(2, 6, 16, 16) * 2 - 1, torch.rand(2, 6, 16, 16) * 2 - 1
    state = torch.get_rng_state()
    loss_d, pred_real = model.discriminator_loss(model.D, real, fake)
    torch.set_rng_state(state)
    expected = 0.5 * (_averaged(mode, model.D(real), True) + _averaged(mode, model.D(fake), False))
    if mode == "wgangp":
        expected = expected + gradient_penalty(model.D, real, fake, model.config.loss.gp_weight)
    assert torch.equal(loss_d, expected)
    assert torch.equal(pred_real, model.D(real))
    got = model.adversarial_loss(model.D, fake)
    assert torch.equal(got, _averaged(mode, model.D(fake), True, for_discriminator=False))


class SoftplusHinge(GANObjective):
    """A toy objective, registered by this module alone: a smooth hinge for D."""

    # Above any logit, so the monitor's accuracies show that it used this threshold: no
    # patch is called real.
    threshold = 1e9
    calls: set[tuple[bool, bool]] = set()

    def loss(self, logits: torch.Tensor, real: bool, for_discriminator: bool) -> torch.Tensor:
        self.calls.add((real, for_discriminator))
        if not for_discriminator:
            return -logits.mean()
        return F.softplus(1 - logits).mean() if real else F.softplus(1 + logits).mean()


@pytest.fixture
def softplus_hinge() -> Iterator[str]:
    OBJECTIVES.register("softplus_hinge")(SoftplusHinge)
    SoftplusHinge.calls.clear()
    yield "softplus_hinge"
    del OBJECTIVES._builders["softplus_hinge"]


def test_a_registered_objective_trains_and_the_monitor_reports_it(
    data: Path,
    tmp_path: Path,
    softplus_hinge: str,
) -> None:
    config = tiny("pix2pix", data, loss={"gan_mode": softplus_hinge}, train={"max_steps": 2})
    t = make_engine(config, tmp_path)
    t.fit()
    # D's loss on real and fake, and the generator's
    assert SoftplusHinge.calls == {(True, True), (False, True), (True, False)}
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    first = next(r for r in records if "d_acc_real" in r)
    assert first["d_acc_real"] == 0.0 and first["d_acc_fake"] == 1.0
    losses = [v for r in records for k, v in r.items() if k.startswith(("G_GAN", "D"))]
    assert losses and all(math.isfinite(v) for v in losses)


def test_config_refuses_an_unregistered_objective_before_training(data: Path) -> None:
    with pytest.raises(ValueError, match=r"'loss.gan_mode': 'softplus_hinge' is not one of.*lsgan"):
        from_dict(tiny("pix2pix", data, loss={"gan_mode": "softplus_hinge"}))


def test_config_checks_the_options_of_the_objective(data: Path) -> None:
    with pytest.raises(ValueError, match=r"^config key 'loss.gp_weight': must be 0 or more"):
        from_dict(tiny("pix2pix", data, loss={"gan_mode": "wgangp", "gp_weight": -1.0}))
    # another objective has no penalty to weigh
    assert from_dict(tiny("pix2pix", data, loss={"gp_weight": -1.0})).loss.gp_weight == -1.0


def test_an_objective_without_a_threshold_or_a_loss_is_refused_where_it_is_defined() -> None:
    with pytest.raises(TypeError, match="NoThreshold: set the class attribute 'threshold'"):

        class NoThreshold(GANObjective):
            def loss(self, logits: torch.Tensor, real: bool, for_discriminator: bool):
                return logits.mean()

    with pytest.raises(TypeError, match=r"NoLoss: define loss\(logits"):

        class NoLoss(GANObjective):
            threshold = 0.0
