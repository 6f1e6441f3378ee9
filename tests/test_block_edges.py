"""The block-edge ratio (translate.core.metrics.block_edge_ratio): the grid an x4 upscaler draws
on smooth areas, as `translate evaluate` reports it for SR models."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from translate.core import metrics


def smooth_lr(seed: int = 0) -> torch.Tensor:
    """A 32x32 LR image of gentle colour (8x8 noise enlarged), in [0, 1]: neighbouring
    pixels a few grey levels apart, as in a blurred background."""
    noise = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    lr = F.interpolate(noise, size=(32, 32), mode="bicubic", align_corners=False)
    return ((lr - lr.mean()) * 0.15 + 0.5).clamp(0, 1)


def grain(image: torch.Tensor, levels: float = 0.5, seed: int = 1) -> torch.Tensor:
    """Noise of ``levels`` grey levels, so nothing is exactly flat within a block."""
    g = torch.Generator().manual_seed(seed)
    return (image + torch.randn(image.shape, generator=g) * levels / 255).clamp(0, 1)


def detailed() -> torch.Tensor:
    """32x32 blocks with steps of 77 grey levels between neighbours: no smooth area."""
    coarse = (torch.arange(64).view(1, 1, 8, 8) % 3 == 0).float() * 0.3
    return F.interpolate(coarse, scale_factor=4).expand(1, 3, 32, 32) * 2 - 1


def test_nearest_upscaling_shows_a_grid_and_bicubic_none() -> None:
    lr = smooth_lr()
    nearest = grain(F.interpolate(lr, scale_factor=4, mode="nearest")) * 2 - 1
    bicubic = grain(F.interpolate(lr, scale_factor=4, mode="bicubic").clamp(0, 1)) * 2 - 1
    assert metrics.smooth_areas(bicubic).float().mean() > 0.3  # most of it is smooth
    assert metrics.block_edge_ratio(nearest[0]) > 4
    assert 0.6 < metrics.block_edge_ratio(bicubic[0]) < 1.5
    # without grain, nothing changes within a nearest-neighbour block
    plain = F.interpolate(lr, scale_factor=4, mode="nearest") * 2 - 1
    assert metrics.block_edge_ratio(plain) == math.inf
    # 2 px blocks: every other edge is no edge of the 4 px grid
    assert 1 < metrics.block_edge_ratio(nearest, block=2) < metrics.block_edge_ratio(nearest)


def test_block_edge_ratio_ignores_brightness_and_counts_smooth_areas_only() -> None:
    image = grain(F.interpolate(smooth_lr(2), scale_factor=4, mode="nearest"), levels=3)
    mask = metrics.smooth_areas(image * 2 - 1)
    ratio = metrics.block_edge_ratio(image * 2 - 1, 4, mask)
    assert ratio > 1.2
    dimmer = metrics.block_edge_ratio(image * 0.5 * 2 - 1, 4, mask)
    assert dimmer == pytest.approx(ratio, rel=0.05)  # 8-bit rounding aside
    assert not metrics.smooth_areas(detailed()).any()
    # the mask decides which pairs count: none at all is NaN
    none = torch.zeros(128, 128, dtype=torch.bool)
    assert math.isnan(metrics.block_edge_ratio(image * 2 - 1, 4, none))
    with pytest.raises(ValueError, match=r"smooth_mask is \(64, 64\), the image \(128, 128\)"):
        metrics.block_edge_ratio(image * 2 - 1, 4, none[:64, :64])


def test_sr_scores_report_the_ratio_over_the_targets_smooth_areas() -> None:
    lr = smooth_lr(3)
    hr = grain(F.interpolate(lr, scale_factor=4, mode="bicubic").clamp(0, 1)) * 2 - 1
    nearest = grain(F.interpolate(lr, scale_factor=4, mode="nearest")) * 2 - 1
    scores = metrics.SRScores(border=4)
    scores.add(torch.cat([nearest, nearest]), torch.cat([hr, hr]))
    want = metrics.block_edge_ratio(nearest[0], 4, metrics.smooth_areas(hr[0], 4))
    assert scores.result()["block_edge_ratio"] == pytest.approx(want)
    assert want > 4
    # pooled over the pairs of every image: one without a smooth area adds none
    assert math.isnan(metrics.block_edge_ratio(detailed()))
    scores.add(detailed(), detailed())
    assert scores.count == 3 and scores.result()["block_edge_ratio"] == pytest.approx(want)
