"""Everything a run does across torchrun's ranks, in one place: joining the process group,
identical starting weights, gradient averaging, and the values every rank must agree on.

With one process (``WORLD_SIZE`` unset or 1) each function is a no-op or returns its input,
so the engine and the trainers call them unconditionally.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from translate.core.process import Ranks


def init_distributed(device: str, timeout: float = 1800.0) -> Ranks:
    """Join the process group when launched by ``torchrun`` (gloo on CPU, nccl on CUDA);
    a rank that waits ``timeout`` seconds for the others fails, so torchrun can restart."""
    ranks = Ranks.from_env()
    if ranks.world_size == 1:
        return ranks
    if not dist.is_initialized():
        # Imported before the group exists: torch.distributed.nn's functions take
        # group.WORLD as a default argument, so importing it later (torch.optim does, through
        # torch._dynamo, when the first optimizer is built) pins the group past
        # destroy_process_group. Its gloo threads then met the interpreter's teardown, which
        # aborted a finished rank now and then (SIGABRT, "terminate called without an
        # active exception").
        import torch.distributed.nn  # noqa: F401

        use_cuda = device != "cpu" and torch.cuda.is_available()
        if use_cuda:  # NCCL binds each process to the GPU current when it starts
            torch.cuda.set_device(ranks.local_rank)
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(seconds=timeout))
    warning = shared_store_warning()
    if warning and dist.get_rank() == 0:
        print(warning, file=sys.stderr)
    return Ranks(dist.get_rank(), dist.get_world_size(), ranks.local_rank)


def leave_distributed() -> None:
    """Leave the process group once a run is over: a gloo group left to the interpreter's
    exit can abort a rank after its work is done ("terminate called without an active
    exception" from a thread of the group), failing a run that finished."""
    if dist.is_initialized():
        dist.destroy_process_group()


def shared_store_warning(environ: Mapping[str, str] = os.environ) -> str | None:
    """A warning when torchrun may restart the group (``--max-restarts``) while the workers
    share its rendezvous store (its default): that store keeps the dead group's addresses,
    and a restarted group can wait on a gone peer until ``train.dist_timeout``
    (pytorch/pytorch#135712). With ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` set for torchrun,
    each group meets on a fresh store."""
    restartable = int(environ.get("TORCHELASTIC_MAX_RESTARTS", "0") or 0) > 0
    if not restartable or environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    return (
        "warning: torchrun --max-restarts with its shared rendezvous store can hang a "
        "restarted group; launch torchrun with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 set"
    )


def elastic_restart(environ: Mapping[str, str] = os.environ) -> int:
    """How many times torchrun has restarted this worker group (0: the first start, or no
    torchrun). A restarted group continues from the run's newest checkpoint."""
    return int(environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


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
    _finish(*_launch(params, world_size))


def _launch(params: list[nn.Parameter], world_size: int) -> tuple[Any, torch.Tensor, list, int]:
    """An asynchronous sum over the ranks of ``params``' gradients, flattened into one."""
    grads = [p.grad for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    return dist.all_reduce(flat, async_op=True), flat, grads, world_size


def _finish(work: Any, flat: torch.Tensor, grads: list[torch.Tensor], world_size: int) -> None:
    """Wait for a :func:`_launch`'s sum, then each gradient is its share of it / ranks."""
    work.wait()
    flat /= world_size
    for grad, reduced in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
        grad.copy_(reduced.view_as(grad))


BUCKET_BYTES = 25 * 2**20  # as DDP's default: large enough to amortise each call's latency


class GradientReducer:
    """Averages one optimizer's gradients over the ranks while backward still runs.

    The parameters are cut into buckets of about ``bucket_bytes`` (default
    :data:`BUCKET_BYTES`) in reverse order of registration, the order in which backward
    usually fills them. A hook on each parameter (``register_post_accumulate_grad_hook``)
    counts the gradients backward has finished; a
    full bucket's all-reduce starts at once, asynchronously, so the network's earlier layers
    compute their gradients while the later ones travel. Buckets start in index order only,
    so every rank issues the same collectives in the same order (gloo and NCCL match calls
    by order). :meth:`wait`, before the optimizer step, starts what backward left unfinished
    (parameters that got no gradient this pass) and waits for all of it. The sums are the
    flat path's (:func:`average_gradients`) element by element, so weights are identical.

    ``overlap=False`` installs no hooks: :meth:`wait` is then one flat all-reduce after
    backward, the earlier path (``train.overlap_grad_reduce: false``, a fallback and the
    benchmark's baseline).
    """

    def __init__(
        self, params: list[nn.Parameter], world_size: int, overlap: bool = True,
        bucket_bytes: int | None = None,
    ) -> None:  # fmt: skip
        self.params, self.world_size, self.overlap = params, world_size, overlap
        bucket_bytes = bucket_bytes or BUCKET_BYTES
        self.buckets: list[list[nn.Parameter]] = []
        size = 0
        for p in reversed(params):
            nbytes = p.numel() * p.element_size()
            full = self.buckets and size + nbytes > bucket_bytes
            if not self.buckets or full or self.buckets[-1][-1].dtype != p.dtype:
                self.buckets.append([])
                size = 0
            self.buckets[-1].append(p)
            size += nbytes
        self.bucket_of = {id(p): i for i, bucket in enumerate(self.buckets) for p in bucket}
        self.armed = False
        self._reset()
        if overlap:
            for p in params:
                p.register_post_accumulate_grad_hook(self._ready)

    def _reset(self) -> None:
        self.ready = [0] * len(self.buckets)
        self.launched: list[tuple[Any, torch.Tensor, list, int]] = []

    def arm(self) -> None:
        """The next backward pass updates these parameters: reduce them as it fills them."""
        self._reset()
        self.armed = True

    def _ready(self, param: nn.Parameter) -> None:
        if not self.armed:  # another optimizer's backward passing through these parameters
            return
        self.ready[self.bucket_of[id(param)]] += 1
        while (i := len(self.launched)) < len(self.buckets) and self.ready[i] == len(
            self.buckets[i]
        ):
            self.launched.append(_launch(self.buckets[i], self.world_size))

    def wait(self) -> None:
        """Every gradient averaged: the buckets backward left unlaunched start now (their
        parameters with a gradient), then each all-reduce is waited for and divided."""
        self.armed = False
        if not self.overlap:
            average_gradients([p for p in self.params if p.grad is not None], self.world_size)
            return
        for bucket in self.buckets[len(self.launched) :]:
            grads = [p for p in bucket if p.grad is not None]
            if grads:
                self.launched.append(_launch(grads, self.world_size))
        for launched in self.launched:
            _finish(*launched)
        self._reset()


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
