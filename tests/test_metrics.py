import pytest
import torch

from translate.core import metrics


def test_l1_and_psnr_on_a_known_difference():
    target = torch.zeros(2, 3, 8, 8)
    output = torch.full_like(target, 0.2)  # 0.1 apart on the [0, 1] scale: MSE 0.01
    assert metrics.l1(output, target) == pytest.approx(0.2)
    assert metrics.psnr(output, target) == pytest.approx(20.0, rel=1e-4)


def test_ssim_is_one_for_identical_images_and_lower_for_noise():
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert metrics.ssim(x, x) == pytest.approx(1.0, abs=1e-4)
    noisy = (x + 0.5 * torch.randn_like(x)).clamp(-1, 1)
    assert metrics.ssim(noisy, x) < 0.8


def test_ssim_on_images_smaller_than_the_window():
    x = torch.rand(1, 1, 6, 6)
    assert metrics.ssim(x, x) == pytest.approx(1.0, abs=1e-4)


def test_diversity_is_mean_pairwise_l1():
    same = torch.ones(4, 3, 4, 4)
    assert metrics.diversity(same) == 0
    pair = torch.stack([torch.zeros(3, 4, 4), torch.full((3, 4, 4), 0.5)])
    assert metrics.diversity(pair) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        metrics.diversity(same[:1])


def test_diversity_takes_the_mean_of_a_given_distance_over_each_pair(monkeypatch):
    monkeypatch.setattr(metrics, "PAIR_BATCH", 2)  # 6 pairs: three calls of the distance
    images = torch.arange(4.0).view(4, 1, 1, 1)
    calls = []

    def largest_difference(a, b):
        calls.append(a.shape[0])
        return (a - b).abs().flatten(1).amax(1)

    # pairs (0,1) (0,2) (0,3) (1,2) (1,3) (2,3): differences 1 2 3 1 2 1
    assert metrics.diversity(images, largest_difference) == pytest.approx(10 / 6)
    assert calls == [2, 2, 2]
    assert metrics.diversity(images, largest_difference) == pytest.approx(metrics.diversity(images))
