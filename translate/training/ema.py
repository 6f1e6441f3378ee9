"""An exponential moving average of the generators' weights (``train.ema``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


class WeightAverage:
    """Averages of every floating-point entry of each network's state dict.

    The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, as
    TensorFlow's ExponentialMovingAverage does, so a short run's average is not dominated
    by the random initial weights (0.999 ** 1000 still weighs them by 0.37). Integer
    entries (batch norm's step counter) follow the network.
    """

    def __init__(self, nets: dict[str, nn.Module], decay: float) -> None:
        self.nets, self.decay, self.updates = nets, decay, 0
        self.average = {name: copy_state(net) for name, net in nets.items()}

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, net in self.nets.items():
            average = self.average[name]
            for key, live in net.state_dict().items():
                if live.is_floating_point():
                    average[key].lerp_(live, 1 - decay)
                else:
                    average[key].copy_(live)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """The networks hold the averaged weights inside the block, their own after it."""
        own = {name: copy_state(net) for name, net in self.nets.items()}
        try:
            for name, net in self.nets.items():
                net.load_state_dict(self.average[name])
            yield
        finally:
            for name, net in self.nets.items():
                net.load_state_dict(own[name])

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "average": self.average}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = state["updates"]
        for name, average in self.average.items():
            for key, value in state["average"][name].items():
                average[key].copy_(value)


def copy_state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}
