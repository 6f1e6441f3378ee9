import math

import pytest
import torch
from torch import nn

from translate import GANLoss, feature_matching_loss, gradient_penalty


def test_vanilla_is_bce_with_logits():
    loss = GANLoss("vanilla")
    zeros = torch.zeros(2, 1, 3, 3)
    assert loss(zeros, True).item() == pytest.approx(math.log(2))
    assert loss(zeros, False).item() == pytest.approx(math.log(2))
    big = torch.full((1, 1, 2, 2), 20.0)
    assert loss(big, True).item() < 1e-6
    assert loss(big, False).item() == pytest.approx(20.0, rel=1e-4)


def test_lsgan_is_mse_to_one_or_zero():
    loss = GANLoss("lsgan")
    x = torch.tensor([0.5, 1.5, 0.0])
    assert loss(x, True).item() == pytest.approx((0.25 + 0.25 + 1) / 3)
    assert loss(x, False).item() == pytest.approx((0.25 + 2.25 + 0) / 3)


def test_hinge_discriminator_and_generator_losses():
    loss = GANLoss("hinge")
    x = torch.tensor([0.5, 2.0, -3.0])
    assert loss(x, True).item() == pytest.approx((0.5 + 0 + 4) / 3)
    assert loss(x, False).item() == pytest.approx((1.5 + 3 + 0) / 3)
    assert loss(x, True, for_discriminator=False).item() == pytest.approx(0.5 / 3)


def test_wgan_losses_are_signed_means():
    loss = GANLoss("wgangp")
    x = torch.tensor([1.0, 2.0, 6.0])
    assert loss(x, True).item() == pytest.approx(-3.0)
    assert loss(x, False).item() == pytest.approx(3.0)


def test_multiscale_predictions_average_the_logits_of_each_scale():
    loss = GANLoss("lsgan")
    scales = [[torch.randn(1, 4), torch.ones(1, 1, 2, 2)], [torch.randn(1, 4), torch.zeros(1, 1)]]
    assert loss(scales, True).item() == pytest.approx(0.5)


def test_losses_are_fp32_under_bf16_input():
    x = torch.randn(2, 1, 4, 4).bfloat16()
    for mode in ("vanilla", "lsgan", "hinge", "wgangp"):
        assert GANLoss(mode)(x, True).dtype == torch.float32


def test_unknown_mode_lists_valid_modes():
    with pytest.raises(ValueError, match="lsgan"):
        GANLoss("wasserstein")


class Linear(nn.Module):
    """D(x) = sum(w * x): its gradient is w everywhere, so the penalty is known."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return (self.w * x).flatten(1).sum(1)


def test_gradient_penalty_on_a_linear_critic():
    w = torch.full((1, 2, 2, 2), 0.25)  # ||w|| = sqrt(8) / 4
    real, fake = torch.randn(3, 2, 2, 2), torch.randn(3, 2, 2, 2)
    penalty = gradient_penalty(Linear(w), real, fake, weight=10.0)
    assert penalty.item() == pytest.approx(10 * (math.sqrt(8) / 4 - 1) ** 2, rel=1e-4)
    unit = torch.full((1, 2, 2, 2), 1 / math.sqrt(8))
    assert gradient_penalty(Linear(unit), real, fake).item() == pytest.approx(0.0, abs=1e-6)


def test_gradient_penalty_reaches_discriminator_parameters():
    critic = Linear(torch.full((1, 1, 2, 2), 2.0))
    gradient_penalty(critic, torch.randn(2, 1, 2, 2), torch.randn(2, 1, 2, 2)).backward()
    assert critic.w.grad is not None and critic.w.grad.abs().sum() > 0


def test_feature_matching_averages_l1_over_layers_and_ignores_logits():
    real = [[torch.zeros(1, 2), torch.zeros(1, 3), torch.full((1, 1), 100.0)]]
    fake = [[torch.ones(1, 2), torch.full((1, 3), 3.0), torch.zeros(1, 1)]]
    assert feature_matching_loss(real, fake).item() == pytest.approx((1 + 3) / 2)


def test_feature_matching_pushes_only_the_fake_side():
    real = [[torch.zeros(1, 2, requires_grad=True), torch.zeros(1, 1)]]
    fake = [[torch.ones(1, 2, requires_grad=True), torch.zeros(1, 1)]]
    feature_matching_loss(real, fake).backward()
    assert real[0][0].grad is None and fake[0][0].grad is not None


def test_feature_matching_needs_intermediate_features():
    with pytest.raises(ValueError, match="multiscale"):
        feature_matching_loss([[torch.zeros(1)]], [[torch.zeros(1)]])
