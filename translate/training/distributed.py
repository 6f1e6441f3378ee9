"""Everything a run does across torchrun's ranks, in one place: joining the process group,
identical starting weights, gradient averaging, and the values every rank must agree on.

With one process (``WORLD_SIZE`` unset or 1) each function is a no-op or returns its input,
so the engine and the trainers call them unconditionally.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from translate.runtime import Ranks


def init_distributed(device: str) -> Ranks:
    """Join the process group when launched by ``torchrun`` (gloo on CPU, nccl on CUDA)."""
    ranks = Ranks.from_env()
    if ranks.world_size == 1:
        return ranks
    if not dist.is_initialized():
        use_cuda = device != "cpu" and torch.cuda.is_available()
        if use_cuda:  # NCCL binds each process to the GPU current when it starts
            torch.cuda.set_device(ranks.local_rank)
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size(), ranks.local_rank)


def sync_batch_norm(model: nn.Module, device: torch.device, world_size: int) -> nn.Module:
    """Batch norm over every rank's batch on CUDA (SyncBatchNorm has no CPU kernel)."""
    if device.type == "cuda" and world_size > 1:
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def broadcast_weights(model: nn.Module, world_size: int) -> None:
    """Rank 0's parameters and buffers on every rank: identical starting weights."""
    if world_size > 1:
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, 0)


def average_gradients(params: list[nn.Parameter], world_size: int) -> None:
    """Each gradient averaged over the ranks, in one all-reduce of them all flattened."""
    if world_size == 1:
        return
    grads = [p.grad for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    for grad, reduced in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
        grad.copy_(reduced.view_as(grad))


def any_rank(flag: bool, device: torch.device, world_size: int) -> bool:
    """True on every rank when ``flag`` is true on any (a stop signal that reached one)."""
    if world_size == 1:
        return flag
    value = torch.tensor(float(flag), device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def mean_over_ranks(value: float, device: torch.device, world_size: int) -> float:
    """``value`` averaged over the ranks, the same on every one (the plateau metric)."""
    tensor = torch.tensor(value, device=device)
    if world_size > 1:
        dist.all_reduce(tensor)
        tensor /= world_size
    return tensor.item()
