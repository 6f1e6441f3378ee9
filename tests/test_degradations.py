"""The synthetic SR degradations (translate/data/degradations.py): shapes, ranges, the
bicubic's exact MATLAB behaviour and per-item determinism."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from translate.data.degradations import DEGRADATIONS, build_degradation


def symmetric_pad(x: torch.Tensor, p: int) -> torch.Tensor:
    """Mirror ``p`` pixels on each side, the edge pixel repeated (MATLAB's 'symmetric')."""
    x = torch.cat([x[..., :p, :].flip(-2), x, x[..., -p:, :].flip(-2)], dim=-2)
    return torch.cat([x[..., :p].flip(-1), x, x[..., -p:].flip(-1)], dim=-1)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_is_matlab_imresize(scale: int) -> None:
    # MATLAB's imresize = PIL's antialiased bicubic on the symmetrically padded image: the
    # interior matches PIL, the border mirrors instead of renormalising the cut kernel.
    hr = torch.rand(2, 3, 12 * scale, 8 * scale, generator=torch.Generator().manual_seed(0))
    lr = build_degradation("bicubic", scale)(hr, torch.tensor([0, 1]))
    assert lr.shape == (2, 3, 12, 8)
    p = 4 * scale
    ref = F.interpolate(symmetric_pad(hr, p), scale_factor=1 / scale, mode="bicubic",
                        antialias=True)[..., 4:-4, 4:-4].clamp(0, 1)  # fmt: skip
    torch.testing.assert_close(lr, ref, atol=1e-5, rtol=0)
    plain = F.interpolate(hr, scale_factor=1 / scale, mode="bicubic", antialias=True)
    assert (lr - plain).abs()[..., 0, :].max() > 1e-3  # the border really is mirrored


def test_bicubic_of_a_constant_is_constant() -> None:
    hr = torch.full((1, 3, 32, 32), 0.7)
    lr = build_degradation("bicubic", 4)(hr, torch.tensor([5]))
    torch.testing.assert_close(lr, torch.full((1, 3, 8, 8), 0.7))


def test_bicubic_clamps_overshoot() -> None:
    hr = torch.zeros(1, 1, 32, 32)
    hr[..., ::2, :] = 1  # stripes make the cubic's negative lobes overshoot
    hr[..., :, 16:] = 1 - hr[..., :, 16:]
    lr = build_degradation("bicubic", 2)(hr, torch.tensor([0]))
    assert lr.min() >= 0 and lr.max() <= 1


def test_unknown_name_and_option_are_named() -> None:
    with pytest.raises(ValueError, match=r"'lanczos'; valid names: bicubic"):
        build_degradation("lanczos", 4)
    with pytest.raises(ValueError, match=r"'sigma' for degradation 'bicubic'; valid options: none"):
        build_degradation("bicubic", 4, sigma=1.0)


def test_input_contract_is_checked() -> None:
    d = build_degradation("bicubic", 4)
    with pytest.raises(ValueError, match="not a multiple of the scale 4"):
        d(torch.rand(1, 3, 30, 32), torch.tensor([0]))
    with pytest.raises(ValueError, match="seeds: expected one per item"):
        d(torch.rand(2, 3, 32, 32), torch.tensor([0]))


@pytest.mark.parametrize("name", sorted(DEGRADATIONS))
def test_per_item_determinism(name: str) -> None:
    # Item 0's output depends on its image and seed only: the same in another batch, at
    # another position; another seed gives another output (for the random degradations).
    g = torch.Generator().manual_seed(1)
    hr = torch.rand(3, 3, 32, 32, generator=g)
    d = build_degradation(name, 4)
    torch.manual_seed(0)
    a = d(hr, torch.tensor([7, 8, 9]))
    torch.manual_seed(123)
    b = d(torch.stack([hr[2], hr[0]]), torch.tensor([9, 7]))
    assert a.shape == (3, 3, 8, 8) and a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(b[1], a[0], atol=0, rtol=0)
    torch.testing.assert_close(b[0], a[2], atol=0, rtol=0)
    if name != "bicubic":
        c = d(hr[:1], torch.tensor([8]))
        assert (c[0] - a[0]).abs().mean() > 1e-3
