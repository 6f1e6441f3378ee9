"""Image quality and diversity measures on tensors in [-1, 1] (NCHW)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
    # kornia (half a second to import) once something is scored, not when training starts
    from kornia.metrics import ssim as _ssim

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


# ITU-R BT.601 luma of [0, 1] RGB, as BasicSR's ``rgb2ycbcr(y_only=True)``: Y in [16, 235]/255.
_BT601 = (65.481, 128.553, 24.966)


def luma(images: torch.Tensor) -> torch.Tensor:
    """The BT.601 Y channel (N1HW, in 0-255 levels) of NCHW images in [-1, 1], each image
    first rounded to 8 bits as the saved files the SR papers score; gray images are their
    own Y in the same [16, 235] range."""
    unit = (_to_unit(images) * 255).round() / 255
    if unit.shape[1] == 1:
        return 16 + 219 * unit
    weights = unit.new_tensor(_BT601).view(1, 3, 1, 1)
    return 16 + (unit[:, :3] * weights).sum(1, keepdim=True)


def _crop(images: torch.Tensor, border: int) -> torch.Tensor:
    return images[..., border : images.shape[-2] - border, border : images.shape[-1] - border]


def psnr_y(output: torch.Tensor, target: torch.Tensor, border: int = 0) -> float:
    """PSNR in dB of the Y channels, ``border`` pixels cropped off each side (the SR papers'
    convention: ``border`` = the scale), averaged per image."""
    y_out, y_target = _crop(luma(output), border), _crop(luma(target), border)
    mse = (y_out - y_target).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(255**2 / mse.clamp_min(1e-10))).mean().item()


def ssim_y(output: torch.Tensor, target: torch.Tensor, border: int = 0) -> float:
    """SSIM of the Y channels (11x11 Gaussian window, sigma 1.5, valid positions only, as
    BasicSR computes it), ``border`` pixels cropped off each side."""
    from kornia.metrics import ssim as _ssim  # as in ssim(): kornia once something is scored

    y_out, y_target = _crop(luma(output), border), _crop(luma(target), border)
    side = min(y_out.shape[-2:])
    window = min(11, side if side % 2 else side - 1)
    return _ssim(y_out, y_target, window, max_val=255.0, padding="valid").mean().item()


class PairedScores:
    """Mean per-image L1, PSNR and SSIM of outputs against targets (NCHW in [-1, 1]),
    accumulated batch by batch (validation during training, ``translate evaluate``)."""

    def __init__(self) -> None:
        self.count = 0
        self.sums: dict[str, float] = {}

    def scores(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        """The batch's mean of each score."""
        return {
            "l1": l1(output, target),
            "psnr": psnr(output, target),
            "ssim": ssim(output, target),
        }

    def add(self, output: torch.Tensor, target: torch.Tensor) -> None:
        """Score a batch of outputs against their targets (NCHW in [-1, 1])."""
        # The images of a batch share one size, so a batch mean is the mean of per-image scores.
        n = output.shape[0]
        for key, value in self.scores(output, target).items():
            self.sums[key] = self.sums.get(key, 0.0) + value * n
        self.count += n

    def result(self) -> dict[str, float]:
        """The mean ``l1``, ``psnr`` and ``ssim`` over every image added."""
        if self.count == 0:
            raise ValueError("no image pairs were scored")
        return {k: v / self.count for k, v in self.sums.items()}


class SRScores(PairedScores):
    """Super-resolution's scores: L1, and PSNR and SSIM on the Y channel with ``border``
    pixels (the scale) cropped off each side, as BasicSR's ``test_y_channel`` /
    ``crop_border`` (``psnr_y``, ``ssim_y``)."""

    def __init__(self, border: int) -> None:
        super().__init__()
        self.border = border

    def scores(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        b = self.border
        return {
            "l1": l1(output, target),
            "psnr_y": psnr_y(output, target, b),
            "ssim_y": ssim_y(output, target, b),
        }
