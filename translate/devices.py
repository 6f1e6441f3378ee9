"""Device names as users write them (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``)."""

from __future__ import annotations

import os

import torch


def mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto``: CUDA (this process's ``LOCAL_RANK`` GPU under torchrun), else MPS, else CPU.

    A name torch does not know, or a device this machine lacks, raises ``ValueError``.
    """
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("mps") if mps_available() else torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device {device!r}: expected auto, cpu, cuda, cuda:N or mps") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: CUDA is not available on this machine")
    if dev.type == "mps" and not mps_available():
        raise ValueError(f"device {device!r}: MPS is not available on this machine")
    return dev
