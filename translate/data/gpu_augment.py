"""Differentiable batch augmentation for the discriminator's inputs (DiffAugment-style).

Real and fake batches get the same random parameters so the discriminator cannot tell them
apart by the augmentation; everything stays differentiable so generator gradients flow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

POLICIES = ("color", "translation", "cutout")


def _color(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    n = x.shape[0]
    rand = torch.rand(n, 3, 1, 1, 1, device=x.device, generator=gen)
    x = x + (rand[:, 0] - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (rand[:, 1] * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (rand[:, 2] + 0.5) + mean


def _translation(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    n = x.shape[0]
    # Shifts of up to 1/8 of a side, in normalized coordinates (2 = full width); nearest
    # sampling keeps pixels intact.
    shift = (torch.rand(n, 2, device=x.device, generator=gen) * 2 - 1) * 0.125 * 2
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = shift.to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _cutout(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    n, _, h, w = x.shape
    ratio = 0.5  # the square cut out: half of each side
    centre = torch.rand(n, 2, 1, device=x.device, generator=gen)
    ys = torch.linspace(0, 1, h, device=x.device).view(1, h, 1)
    xs = torch.linspace(0, 1, w, device=x.device).view(1, 1, w)
    inside = ((ys - centre[:, 0:1]).abs() < ratio / 2) & ((xs - centre[:, 1:2]).abs() < ratio / 2)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_OPS = {"color": _color, "translation": _translation, "cutout": _cutout}


class DiffAugment(nn.Module):
    """Apply the comma-separated ``policy`` to a batch; ``augment(real, fake)`` shares params."""

    def __init__(self, policy: str = "translation,cutout,color") -> None:
        super().__init__()
        self.ops = [p.strip() for p in policy.split(",") if p.strip()]
        bad = [p for p in self.ops if p not in _OPS]
        if bad:
            raise ValueError(f"DiffAugment policy: unknown {bad}; choose from {POLICIES}")

    def forward(self, *batches: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        seed = int(torch.randint(0, 2**62, (1,)).item())
        out = []
        for x in batches:
            # The same seed per batch gives real and fake identical random parameters.
            gen = torch.Generator(device=x.device).manual_seed(seed)
            for op in self.ops:
                x = _OPS[op](x, gen)
            out.append(x)
        return out[0] if len(out) == 1 else tuple(out)
