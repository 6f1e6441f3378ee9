"""Synthetic degradations: the low-resolution inputs a super-resolution trainer makes from
high-resolution images alone.

A :class:`Degradation` maps a batch of HR images ``(B, C, H, W)`` in [0, 1] to LR images
``(B, C, H // scale, W // scale)`` in [0, 1] on the same device. Every random choice for
item ``i`` comes from a ``torch.Generator`` seeded with ``seeds[i]``, so an item's LR image
depends only on its HR image and its seed, never on the batch it is in or on the global
RNG: a resumed run sees the same inputs as an uninterrupted one.

``DEGRADATIONS`` maps names to classes; :func:`build_degradation` builds one by name.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["DEGRADATIONS", "Bicubic", "Degradation", "build_degradation", "imresize_matrix"]


class Degradation(nn.Module):
    """HR batch in [0, 1] and one int64 seed per item -> LR batch, ``scale`` times smaller."""

    scale: int

    def __init__(self, scale: int) -> None:
        super().__init__()
        if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
            raise ValueError(f"scale: expected an integer >= 1, got {scale!r}")
        self.scale = scale

    def check_input(self, hr: Tensor, seeds: Tensor) -> None:
        """Refuse a batch this contract does not cover, naming what is wrong."""
        if hr.ndim != 4:
            raise ValueError(f"hr: expected a (B, C, H, W) batch, got shape {tuple(hr.shape)}")
        h, w = hr.shape[-2:]
        if h % self.scale or w % self.scale:
            raise ValueError(f"hr: {h}x{w} is not a multiple of the scale {self.scale}")
        if seeds.shape != (hr.shape[0],):
            raise ValueError(
                f"seeds: expected one per item, shape ({hr.shape[0]},), got {tuple(seeds.shape)}"
            )

    def forward(self, hr: Tensor, seeds: Tensor) -> Tensor:
        raise NotImplementedError


def _cubic(x: Tensor) -> Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's and PIL's bicubic)."""
    ax = x.abs()
    ax2, ax3 = ax**2, ax**3
    near = 1.5 * ax3 - 2.5 * ax2 + 1
    far = -0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2
    return torch.where(ax <= 1, near, torch.where(ax < 2, far, torch.zeros_like(ax)))


def imresize_matrix(size: int, out_size: int, device: torch.device | None = None) -> Tensor:
    """The ``(out_size, size)`` matrix of MATLAB ``imresize(..., 'bicubic')`` along one axis.

    When shrinking, the kernel is stretched by the factor (antialiasing) and each row's
    weights are normalised; taps outside the image are mirrored back in (MATLAB's
    symmetric border), which is where PIL and ``F.interpolate(antialias=True)`` differ.
    """
    factor = out_size / size
    stretch = min(factor, 1.0)  # only a downscale widens the kernel
    width = 4.0 / stretch
    # Output pixel j (1-based) is centred on input coordinate u (1-based), as in MATLAB.
    x = torch.arange(1, out_size + 1, dtype=torch.float64, device=device)
    u = x / factor + 0.5 * (1 - 1 / factor)
    left = torch.floor(u - width / 2)
    taps = left[:, None] + torch.arange(math.ceil(width) + 2, device=device)[None, :]
    weights = stretch * _cubic(stretch * (u[:, None] - taps))
    weights = weights / weights.sum(dim=1, keepdim=True)
    # Mirror out-of-range taps: index k (0-based) reflects with the edge pixel repeated.
    k = (taps - 1).long() % (2 * size)
    k = torch.where(k < size, k, 2 * size - 1 - k)
    matrix = torch.zeros(out_size, size, dtype=torch.float64, device=device)
    matrix.scatter_add_(1, k, weights)
    return matrix


class Bicubic(Degradation):
    """Clean bicubic downscaling, exactly MATLAB's ``imresize(hr, 1/scale, 'bicubic')``
    (antialiased; the LR inputs of the SR benchmarks and of BasicSR's ``imresize``), on
    float values clamped to [0, 1] instead of rounded to uint8. Takes no options; the seeds
    are unused."""

    def forward(self, hr: Tensor, seeds: Tensor) -> Tensor:
        self.check_input(hr, seeds)
        h, w = hr.shape[-2:]
        rows = imresize_matrix(h, h // self.scale, hr.device)
        cols = imresize_matrix(w, w // self.scale, hr.device)
        # Separable: rows @ image @ cols^T, in float64 for weights, back in hr's dtype.
        dtype = torch.float32 if hr.dtype in (torch.float16, torch.bfloat16) else hr.dtype
        lr = rows.to(dtype) @ hr.to(dtype) @ cols.to(dtype).T
        return lr.clamp(0, 1).to(hr.dtype)


DEGRADATIONS: dict[str, type[Degradation]] = {"bicubic": Bicubic}


def degradation_options(name: str) -> dict[str, Any]:
    """The options the named degradation takes, with their defaults."""
    if name not in DEGRADATIONS:
        raise ValueError(
            f"unknown degradation {name!r}; valid names: {', '.join(sorted(DEGRADATIONS))}"
        )
    params = inspect.signature(DEGRADATIONS[name]).parameters
    return {k: p.default for k, p in params.items() if k != "scale"}


def build_degradation(name: str, scale: int, **options: Any) -> Degradation:
    """The degradation ``name`` for an x``scale`` model; ``options`` override its defaults.

    An unknown name or option raises ``ValueError`` naming it and the valid ones.
    """
    valid = degradation_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        listed = ", ".join(valid) if valid else "none"
        raise ValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for degradation {name!r}; "
            f"valid options: {listed}"
        )
    return DEGRADATIONS[name](scale, **options)
