"""How a generator normalises at test time: batch norm's running statistics, or each
image's own statistics with dropout on, as the reference's default pix2pix test runs
(train mode at batch 1, as the pix2pix paper does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from translate.core.choices import NORM_STATS


@dataclass
class EvalMode:
    """``norm_stats``: ``running`` (eval mode) or ``batch`` (each image's statistics, what
    train mode computes at batch 1, so results do not depend on how images are batched);
    ``dropout``: dropout layers stay active (random outputs)."""

    norm_stats: str = "running"
    dropout: bool = False

    def __post_init__(self) -> None:
        if self.norm_stats not in NORM_STATS:
            raise ValueError(
                f"norm_stats: expected {' or '.join(NORM_STATS)}, got {self.norm_stats!r}"
            )
        if not isinstance(self.dropout, bool):
            raise ValueError(f"dropout: expected true or false, got {self.dropout!r}")

    def override(self, norm_stats: str | None = None, dropout: bool | None = None) -> EvalMode:
        """This mode with the options given (None keeps this mode's)."""
        return EvalMode(
            self.norm_stats if norm_stats is None else norm_stats,
            self.dropout if dropout is None else dropout,
        )


class PerImageBatchNorm(nn.Module):
    """A ``BatchNorm2d`` normalising by each image's statistics: batch statistics at batch
    size 1, computed for any batch size (instance norm with the batch norm's affine). Its
    running statistics are neither used nor updated. Scriptable and ONNX-exportable."""

    def __init__(self, norm: nn.BatchNorm2d) -> None:
        super().__init__()
        self.weight = norm.weight
        self.bias = norm.bias
        self.eps = norm.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


def has_batch_norm(net: nn.Module) -> bool:
    return any(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def set_eval_mode(net: nn.Module, mode: EvalMode) -> Callable[[], None]:
    """Put ``net`` in eval mode with ``mode`` applied, in place; returns what undoes it
    (batch norm layers back, dropout off; the module stays in eval mode)."""
    net.eval()
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    if mode.norm_stats == "batch":
        for parent in list(net.modules()):
            for name, child in parent.named_children():
                if isinstance(child, nn.BatchNorm2d):
                    swapped.append((parent, name, child))
                    setattr(parent, name, PerImageBatchNorm(child))
    dropouts = [m for m in net.modules() if isinstance(m, nn.Dropout)] if mode.dropout else []
    for layer in dropouts:
        layer.train()

    def undo() -> None:
        for parent, name, child in swapped:
            setattr(parent, name, child)
        for layer in dropouts:
            layer.eval()

    return undo
