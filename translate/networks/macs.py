"""Multiply-accumulate counts of a network, measured by forward hooks on one input.

Hooks see the shapes each layer really runs at, so any network is counted without a
per-architecture formula. Convolutions (plain, grouped, depthwise, transposed) and linear
layers are counted; norms, activations, padding and additions are not, as in the papers
that quote GMACs (GAN Compression's 56.8 -> 2.67 GMAC among them).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _layer_macs(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    if isinstance(module, TRANSPOSED):
        # Every input element is multiplied into a kernel-sized patch of each output channel.
        per_input = module.out_channels // module.groups * module.weight[0, 0].numel()
        return inputs[0].numel() * per_input
    if isinstance(module, CONVOLUTIONS):
        per_output = module.in_channels // module.groups * module.weight[0, 0].numel()
        return output.numel() * per_output
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def count_macs(net: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass of ``net`` on a batch-1 input of
    ``input_shape`` (without the batch axis, e.g. ``(3, 256, 256)``).

    Counted in eval mode (batch norm uses running statistics, dropout is off).
    """
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += _layer_macs(module, inputs, output)

    # A copy on the meta device runs shapes only: a 50 GMAC network is counted in
    # milliseconds, and the caller's network (its device, dtype, mode) is left untouched.
    shadow = copy.deepcopy(net).to("meta").eval()
    for module in shadow.modules():
        module.register_forward_hook(hook)
    with torch.no_grad():
        shadow(torch.zeros(1, *input_shape, device="meta"))
    return total


def count_parameters(net: nn.Module) -> int:
    """The number of parameters of ``net`` (trainable or not)."""
    return sum(p.numel() for p in net.parameters())
