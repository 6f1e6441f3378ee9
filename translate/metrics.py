"""Image quality and diversity measures on tensors in [-1, 1] (NCHW)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.metrics import ssim as _ssim


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    return ((x.float() + 1) / 2).clamp(0, 1)


def l1(output: torch.Tensor, target: torch.Tensor) -> float:
    """Mean absolute error on the [-1, 1] scale the networks work in."""
    return F.l1_loss(output.float(), target.float()).item()


def psnr(output: torch.Tensor, target: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB, with images mapped to [0, 1]; averaged per image."""
    mse = (_to_unit(output) - _to_unit(target)).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(1 / mse.clamp_min(1e-10))).mean().item()


def ssim(output: torch.Tensor, target: torch.Tensor, window: int = 11) -> float:
    """Structural similarity (Gaussian 11x11 window) with images mapped to [0, 1]."""
    side = min(output.shape[-2:])
    window = min(window, side if side % 2 else side - 1)  # odd, and no larger than the image
    return _ssim(_to_unit(output), _to_unit(target), window).mean().item()


def diversity(images: torch.Tensor) -> float:
    """Mean pairwise L1 distance between the images of a batch (0 when all are equal).

    Compared against the same score of the real targets, it flags mode collapse.
    """
    flat = images.float().flatten(1)
    if flat.shape[0] < 2:
        raise ValueError("diversity needs at least two images")
    dists = torch.cdist(flat, flat, p=1) / flat.shape[1]
    n = flat.shape[0]
    return (dists.sum() / (n * (n - 1))).item()


class PairedScores:
    """Mean per-image L1, PSNR and SSIM of outputs against targets (NCHW in [-1, 1]),
    accumulated batch by batch (validation during training, ``translate evaluate``)."""

    def __init__(self) -> None:
        self.count = 0
        self.sums = {"l1": 0.0, "psnr": 0.0, "ssim": 0.0}

    def add(self, output: torch.Tensor, target: torch.Tensor) -> None:
        """Score a batch of outputs against their targets (NCHW in [-1, 1])."""
        # The images of a batch share one size, so a batch mean is the mean of per-image scores.
        n = output.shape[0]
        self.sums["l1"] += l1(output, target) * n
        self.sums["psnr"] += psnr(output, target) * n
        self.sums["ssim"] += ssim(output, target) * n
        self.count += n

    def result(self) -> dict[str, float]:
        """The mean ``l1``, ``psnr`` and ``ssim`` over every image added."""
        if self.count == 0:
            raise ValueError("no image pairs were scored")
        return {k: v / self.count for k, v in self.sums.items()}
