"""Learning-rate policies, stepped once per epoch as in the reference code."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler, ReduceLROnPlateau

from translate.training.config import ScheduleConfig


class LinearDecay:
    """Factor 1 for ``epochs`` epochs, then linearly down to 0 over ``decay_epochs``.

    The reference's rule, as a picklable callable so scheduler state can be checkpointed.
    """

    def __init__(self, epochs: int, decay_epochs: int) -> None:
        self.epochs, self.decay_epochs = epochs, decay_epochs

    def __call__(self, epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - self.epochs) / float(self.decay_epochs + 1)


class StepDecay:
    """Factor ``gamma ** (epoch // step_size)``."""

    def __init__(self, step_size: int, gamma: float) -> None:
        self.step_size, self.gamma = step_size, gamma

    def __call__(self, epoch: int) -> float:
        return math.pow(self.gamma, epoch // self.step_size)


def build_scheduler(optimizer: Optimizer, cfg: ScheduleConfig) -> LRScheduler | ReduceLROnPlateau:
    """The scheduler for ``cfg.policy``; ``plateau`` needs ``step(metric)`` (lower is better)."""
    if cfg.policy == "linear":
        return LambdaLR(optimizer, LinearDecay(cfg.epochs, cfg.decay_epochs))
    if cfg.policy == "step":
        return LambdaLR(optimizer, StepDecay(cfg.step_size, cfg.gamma))
    if cfg.policy == "plateau":
        return ReduceLROnPlateau(optimizer, factor=cfg.gamma, patience=cfg.patience)
    if cfg.policy == "cosine":
        return CosineAnnealingLR(optimizer, T_max=cfg.epochs + cfg.decay_epochs)
    raise ValueError(f"schedule.policy: unknown {cfg.policy!r}")


def lr_left(scheduler: LRScheduler | ReduceLROnPlateau) -> float | None:
    """The learning rate's share of its start; None where the scheduler keeps no start
    (``plateau``)."""
    group = scheduler.optimizer.param_groups[0]
    start = group.get("initial_lr")
    return group["lr"] / start if start else None


def decay_start(cfg: ScheduleConfig) -> int | None:
    """The first epoch (0-based) that ``cfg.policy`` trains at a lower learning rate than
    the first; None for ``plateau``, where it depends on the losses."""
    return {"linear": cfg.epochs, "step": cfg.step_size, "cosine": 1}.get(cfg.policy)
