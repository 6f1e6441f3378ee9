"""The synthetic SR degradations (translate/data/degradations.py): shapes, ranges, the
bicubic's exact MATLAB behaviour and per-item determinism."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from translate.data.degradations import (
    DEGRADATIONS,
    add_gaussian_noise,
    add_poisson_noise,
    blur_kernel,
    build_degradation,
    jpeg,
    sinc_kernel,
)


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
    with pytest.raises(ValueError, match=r"'lanczos'; valid names: bicubic, realesrgan"):
        build_degradation("lanczos", 4)
    with pytest.raises(
        ValueError, match=r"^sigma: unknown option for degradation 'bicubic'; valid options: none"
    ):
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


def second_moments(k: torch.Tensor) -> tuple[float, float, float]:
    """The kernel's variance along x (columns), along y (rows) and its xy covariance."""
    r = torch.arange(k.shape[-1], dtype=torch.float32) - k.shape[-1] // 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    return float((k * x * x).sum()), float((k * y * y).sum()), float((k * x * y).sum())


@pytest.mark.parametrize("family", ["gaussian", "generalized", "plateau"])
def test_isotropic_kernels_are_normalised_and_round(family: str) -> None:
    k = blur_kernel(15, 2.0, 2.0, family=family, beta=1.5)
    assert k.shape == (15, 15)
    torch.testing.assert_close(k.sum(), torch.tensor(1.0))
    torch.testing.assert_close(k, k.T)  # isotropic: the same along rows and columns
    torch.testing.assert_close(k, k.flip(0))
    assert k[7, 7] == k.max()


def test_anisotropic_kernel_follows_its_axes() -> None:
    k = blur_kernel(21, 3.0, 1.0)  # wide along x
    vx, vy, cxy = second_moments(k)
    assert vx > 4 * vy and abs(cxy) < 1e-4
    assert vx == pytest.approx(9.0, rel=0.05)  # a Gaussian's variance is sigma**2
    torch.testing.assert_close(k, k.flip(0))  # still mirror symmetric
    # Rotated a quarter turn it is the transpose; at 45 degrees x and y correlate.
    torch.testing.assert_close(blur_kernel(21, 3.0, 1.0, theta=math.pi / 2), k.T)
    assert second_moments(blur_kernel(21, 3.0, 1.0, theta=math.pi / 4))[2] > 1.0
    torch.testing.assert_close(blur_kernel(21, 3.0, 1.0, theta=math.pi), k)  # point symmetric


def test_generalized_and_plateau_shapes() -> None:
    # beta > 1 flattens the top of the generalized Gaussian; the plateau has heavier tails.
    g = blur_kernel(21, 2.0, 2.0)
    flat = blur_kernel(21, 2.0, 2.0, family="generalized", beta=4.0)
    assert flat[10, 11] / flat[10, 10] > g[10, 11] / g[10, 10]
    plateau = blur_kernel(21, 2.0, 2.0, family="plateau", beta=1.0)
    assert plateau[10, 0] / plateau[10, 10] > 100 * g[10, 0] / g[10, 10]


def test_sinc_kernel() -> None:
    k = sinc_kernel(13, math.pi / 2, pad_to=21)
    assert k.shape == (21, 21) and k[:4].abs().max() == 0  # zero-padded around the 13x13
    torch.testing.assert_close(k.sum(), torch.tensor(1.0))
    torch.testing.assert_close(k, k.T)
    assert k[10, 10] == k.max() and k.min() < 0  # the ringing lobes of a sinc
    # A lower cutoff passes fewer frequencies: a wider main lobe.
    wide, narrow = sinc_kernel(13, math.pi / 4), sinc_kernel(13, math.pi / 2)
    assert wide[6, 7] / wide[6, 6] > narrow[6, 7] / narrow[6, 6]


@pytest.mark.parametrize("gray", [False, True])
def test_gaussian_noise_statistics(gray: bool) -> None:
    img = torch.full((1, 3, 64, 64), 0.5)
    out = add_gaussian_noise(img, 10 / 255, gray, torch.Generator().manual_seed(0))
    noise = out - img
    assert noise.std().item() == pytest.approx(10 / 255, rel=0.05)
    assert abs(noise.mean().item()) < 1e-3
    same = torch.equal(noise[:, 0], noise[:, 1]) and torch.equal(noise[:, 1], noise[:, 2])
    assert same is gray


def test_poisson_noise_statistics() -> None:
    # A ramp with 256 grey levels: photon counts of img * 256, so std = scale * sqrt(img / 256).
    ramp = torch.arange(256, dtype=torch.float32) / 255
    img = ramp.repeat(3, 64, 1)[None]
    g = torch.Generator().manual_seed(0)
    noise = add_poisson_noise(img, 2.0, False, g) - img
    mid = noise[..., 100:156]  # away from the clamped ends
    expected = 2.0 * (img[..., 100:156] / 256).sqrt().mean()
    assert mid.std().item() == pytest.approx(expected.item(), rel=0.1)
    assert abs(mid.mean().item()) < 2e-3
    gray = add_poisson_noise(img, 2.0, True, g) - img
    torch.testing.assert_close(gray[:, 0, :, 10:-10], gray[:, 2, :, 10:-10])
    assert not torch.equal(noise[:, 0], noise[:, 2])


def test_jpeg_quality_matters() -> None:
    img = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    img = F.interpolate(img, size=32, mode="bilinear")  # smooth, like a photo
    out = jpeg(img, torch.tensor([10.0, 95.0]))
    err = (out - img).abs().mean(dim=(1, 2, 3))
    assert err[0] > 2 * err[1] > 0
    grey = jpeg(img[:, :1], torch.tensor([95.0, 95.0]))
    assert grey.shape == (2, 1, 32, 32) and (grey - img[:, :1]).abs().mean() < 0.1


def test_realesrgan_differs_from_bicubic() -> None:
    hr = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    hr = F.avg_pool2d(hr, 3, 1, 1)  # some structure for the blur to remove
    seeds = torch.arange(4)
    bicubic = build_degradation("bicubic", 4)(hr, seeds)
    real = build_degradation("realesrgan", 4)(hr, seeds)
    assert real.shape == bicubic.shape
    per_item = (real - bicubic).abs().mean(dim=(1, 2, 3))
    assert per_item.min() > 0.01
    torch.testing.assert_close(real * 255, (real * 255).round())  # rounded to 8 bits


def test_realesrgan_takes_grey_images() -> None:
    hr = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(4))
    lr = build_degradation("realesrgan", 2)(hr, torch.tensor([0, 1]))
    assert lr.shape == (2, 1, 16, 16) and lr.min() >= 0 and lr.max() <= 1
    assert (lr - F.avg_pool2d(hr, 2)).abs().mean() > 0.01


def test_realesrgan_defaults_are_the_published_ones() -> None:
    # train_realesrgan_x4plus.yml: the second order blurs and resizes less, and adds less noise.
    d = DEGRADATIONS["realesrgan"].defaults
    assert d["resize_prob"] == (0.2, 0.7, 0.1) and d["resize_prob2"] == (0.3, 0.4, 0.3)
    assert d["blur_sigma"] == (0.2, 3.0) and d["blur_sigma2"] == (0.2, 1.5)
    assert d["noise_range"] == (1.0, 30.0) and d["noise_range2"] == (1.0, 25.0)
    assert d["second_blur_prob"] == 0.8 and d["final_sinc_prob"] == 0.8
    assert len(d) == 2 * 13 + 3  # both orders' 13 options, the kernel size, 2 probabilities


def test_realesrgan_draws_at_the_published_rates() -> None:
    d = build_degradation("realesrgan", 4)
    plans = [d.plan(seed) for seed in range(400)]

    def share(test) -> float:
        return sum(map(test, plans)) / len(plans)

    identity = torch.zeros(21, 21)
    identity[10, 10] = 1
    assert share(lambda p: torch.equal(p.sinc, identity)) == pytest.approx(0.2, abs=0.06)
    assert share(lambda p: p.kernel2 is None) == pytest.approx(0.2, abs=0.06)
    assert share(lambda p: p.jpeg_first) == pytest.approx(0.5, abs=0.08)
    assert share(lambda p: p.resize1[0] > 1) == pytest.approx(0.2, abs=0.06)
    assert share(lambda p: p.resize1[0] < 1) == pytest.approx(0.7, abs=0.07)
    assert share(lambda p: 0.15 <= p.resize1[0] <= 1.5) == 1
    assert share(lambda p: p.resize2[0] == 1) == pytest.approx(0.3, abs=0.07)
    assert share(lambda p: p.noise1[0] == "gaussian") == pytest.approx(0.5, abs=0.08)
    assert share(lambda p: p.noise2[2]) == pytest.approx(0.4, abs=0.08)  # grey noise
    assert share(lambda p: 30 <= p.quality1 <= 95) == 1
    # Kernels: normalised, zero-padded to 21 around an odd size of 7 to 21.
    for p in plans[:50]:
        torch.testing.assert_close(p.kernel1.sum(), torch.tensor(1.0))
        rows = p.kernel1.abs().sum(1).nonzero()
        assert (rows.max() - rows.min() + 1) % 2 == 1 and rows.max() + rows.min() == 20


def test_realesrgan_options() -> None:
    # Everything off but the resize: the result is the plain area/bilinear/bicubic resize.
    quiet = dict(
        sinc_prob=0.0, sinc_prob2=0.0, final_sinc_prob=0.0, second_blur_prob=0.0,
        blur_sigma=[0.01, 0.01], noise_range=[0, 0], noise_range2=[0, 0],
        gaussian_noise_prob=1.0, gaussian_noise_prob2=1.0, jpeg_range=[100, 100],
        jpeg_range2=[100, 100], resize_prob=[0, 0, 1], resize_prob2=[0, 0, 1],
    )  # fmt: skip
    hr = torch.full((2, 3, 32, 32), 0.5)
    out = build_degradation("realesrgan", 2, **quiet)(hr, torch.tensor([0, 1]))
    assert out.shape == (2, 3, 16, 16)
    assert (out - 128 / 255).abs().max() <= 1 / 255 + 1e-6
    with pytest.raises(ValueError, match=r"resize_prob2: expected 3 non-negative weights"):
        build_degradation("realesrgan", 4, resize_prob2=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"kernel_list: expected a list of iso"):
        build_degradation("realesrgan", 4, kernel_list=["box"])
    with pytest.raises(
        ValueError,
        match=r"^blur_sigma3: unknown .* mean 'blur_sigma' or 'blur_sigma2'.*options: blur_k",
    ):
        build_degradation("realesrgan", 4, blur_sigma3=[1, 2])
    with pytest.raises(ValueError, match=r"^sinc_prob: expected float \(like the default 0.1\)"):
        build_degradation("realesrgan", 4, sinc_prob="often")
    with pytest.raises(ValueError, match=r"hr: the realesrgan degradation takes 1 or 3"):
        build_degradation("realesrgan", 4)(torch.rand(1, 4, 32, 32), torch.tensor([0]))


@pytest.mark.parametrize("name", sorted(DEGRADATIONS))
def test_autocast_does_not_change_the_lr_images(name: str) -> None:
    hr = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    d = build_degradation(name, 4)
    plain = d(hr, torch.tensor([1, 2]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = d(hr, torch.tensor([1, 2]))
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, plain, atol=0, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", sorted(DEGRADATIONS))
def test_runs_on_the_batch_device(name: str) -> None:
    hr = torch.rand(2, 3, 32, 32, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    d = build_degradation(name, 4)
    a = d(hr, torch.tensor([3, 4]))
    b = d(hr[1:], torch.tensor([4]))
    assert a.device == hr.device and a.shape == (2, 3, 8, 8)
    torch.testing.assert_close(b[0], a[1], atol=0, rtol=0)
    grey = d(hr[:, :1], torch.tensor([3, 4]))
    assert grey.shape == (2, 1, 8, 8) and grey.device == hr.device
