"""Where and how a command runs: the device and the autocast precision (the torchrun ranks:
:mod:`translate.core.process`).

Every command resolves them here, so ``auto`` has one meaning per use (the README's
"Devices and precision" table): ``train`` and ``inference`` (convert, Translator, evaluate,
the benchmark's converter case).
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from translate.core.choices import PRECISIONS
from translate.core.process import Ranks

# The one dtype table: the autocast dtype of each precision (fp32 runs without autocast).
AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "int8": None,  # a quantized graph (inference backends only), run without autocast
}
# CPU flags (Linux /proc/cpuinfo) of native bf16 arithmetic: x86 AVX-512 BF16 and AMX,
# ARMv8.6 BF16. Without them oneDNN emulates bf16 and autocast runs 10-15x slower than
# fp32 (unet_128 forward+backward on an AVX2 AMD EPYC: 0.88 s fp32, 13.4 s bf16).
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
Use = Literal["train", "inference"]


class SlowPrecisionWarning(UserWarning):
    """A precision this machine only emulates: it works, many times slower."""


# --- devices -------------------------------------------------------------------------------


def mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def resolve_device(device: str | torch.device = "auto", use: Use = "inference") -> torch.device:
    """``auto``: CUDA, else MPS (inference only), else the CPU. Bare ``cuda`` is this
    process's ``LOCAL_RANK`` GPU, so every torchrun rank gets its own.

    A name torch does not know, or a device this machine lacks, raises ``ValueError``.
    """
    name = str(device)
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        else:
            return torch.device("mps" if use == "inference" and mps_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"device {name!r}: expected auto, cpu, cuda, cuda:N or mps") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: CUDA is not available on this machine")
    if dev.type == "mps" and not mps_available():
        raise ValueError(f"device {name!r}: MPS is not available on this machine")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", Ranks.from_env().local_rank)
    return dev


# --- the CPU -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuInfo:
    model: str
    capability: str  # torch's SIMD level: AVX2, AVX512, ...
    flags: frozenset[str]

    @property
    def native_bf16(self) -> bool:
        return bool(self.flags & BF16_CPU_FLAGS) or "AMX" in self.capability

    def describe(self) -> str:
        bf16 = "native bf16" if self.native_bf16 else "no native bf16"
        return f"{self.model}, torch capability {self.capability}, {bf16}"


@functools.cache
def cpu_info() -> CpuInfo:
    """The CPU's model name, torch's capability and its flags (empty off Linux)."""
    model, flags = platform.processor() or platform.machine(), frozenset[str]()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model == (platform.processor() or platform.machine()):
                model = value.strip()
            elif key in ("flags", "Features") and not flags:  # x86 / ARM
                flags = frozenset(value.split())
    return CpuInfo(model, torch.backends.cpu.get_cpu_capability(), flags)


# --- precision -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Precision:
    """A resolved precision on a device: ``fp32``, ``bf16`` or ``fp16`` autocast."""

    name: str
    device_type: str

    @property
    def dtype(self) -> torch.dtype | None:
        return AUTOCAST_DTYPES[self.name]

    @property
    def batch_invariant(self) -> bool:
        """Whether an image's result is the same whatever shares its batch: fp32 on the CPU
        (oneDNN's fp32 kernels; the convert fault tests pin it byte for byte). bf16 on the
        CPU is not (its transposed convolutions sum in an order set by the batch size), nor
        are GPUs (cuDNN picks kernels by batch size)."""
        return self.name == "fp32" and self.device_type == "cpu"

    @property
    def grad_scaling(self) -> bool:
        """fp16 training needs a grad scaler; bf16 has fp32's range."""
        return self.name == "fp16"

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        dtype = self.dtype
        return torch.autocast(
            self.device_type, dtype=dtype or torch.float32, enabled=dtype is not None
        )


def auto_precision(device: torch.device, use: Use) -> str:
    """What ``auto`` means. CUDA: bf16 for training where the GPU has it (else fp16 with a
    grad scaler), fp16 for inference. CPU: bf16 where the CPU has native bf16, for training
    and inference alike (inference outputs differ from fp32's by a few grey levels: at most
    1 for the 2.3 M-parameter demo unet_128, up to 4 for a trained 41.8 M-parameter
    unet_128; a bf16 step of srvgg_compact was 1.46x faster; docs/devices.md), else fp32,
    since emulated bf16 runs 10-15x slower. MPS: fp32."""
    if device.type == "cuda":
        if use == "train":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp16"
    if device.type == "cpu" and cpu_info().native_bf16:
        return "bf16"
    return "fp32"


def resolve_precision(
    precision: str,
    device: torch.device,
    use: Use = "inference",
    key: str = "--precision",
    supported: Sequence[str] | None = None,
) -> Precision:
    """``precision`` (one of ``PRECISIONS``) checked against ``device``; errors name ``key``.

    ``supported``: the precisions a model declares it runs in (a generator's ``precisions``;
    None: all); ``auto`` falls back to fp32 where its choice is not among them, and asking
    for one that is not raises. bf16 on a CPU without native bf16 runs, after a
    :class:`SlowPrecisionWarning`.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"{key}: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        precision = auto_precision(device, use)
        if supported is not None and precision not in supported:
            precision = "fp32"
    elif supported is not None and precision not in supported:
        raise ValueError(
            f"{key}: {precision} is not supported by this model (it runs in "
            f"{', '.join(supported)}); use one of those or auto"
        )
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"{key}: fp16 needs a CUDA device (got {device}); use bf16 or fp32")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"{key}: this GPU does not support bf16; use fp16 or fp32")
    emulated = precision == "bf16" and device.type == "cpu" and not cpu_info().native_bf16
    if emulated and "bf16" not in _warned:  # once per process
        _warned.add("bf16")
        warnings.warn(
            f"{key}: bf16 on a CPU without native bf16 ({cpu_info().describe()}): expect it to run "
            "10-15x slower than fp32; use fp32 or auto",
            SlowPrecisionWarning,
            stacklevel=2,
        )
    return Precision(precision, device.type)


_warned: set[str] = set()  # the warnings given


# --- memory --------------------------------------------------------------------------------

_UNKNOWN_FREE = 4 << 30  # when the free memory cannot be read


def free_memory(device: torch.device) -> int:
    """Bytes free for this process on ``device``: the GPU's free memory, or the RAM
    available under the machine's and the cgroup's (container's) limits."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    limits = [_meminfo_available(), _cgroup_free()]
    known = [n for n in limits if n is not None]
    return min(known) if known else _UNKNOWN_FREE


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


# Each cgroup version's memory files (limit, usage) and usual mount point; a v2 limit of
# "max" is none, v1 writes a huge number instead.
_CGROUP_FILES = {
    "cgroup2": ("memory.max", "memory.current", "/sys/fs/cgroup"),
    "cgroup": ("memory.limit_in_bytes", "memory.usage_in_bytes", "/sys/fs/cgroup/memory"),
}


def _cgroup_free(proc: Path = Path("/proc/self"), root: Path = Path("/")) -> int | None:
    """The memory left under the tightest limit of this process's memory cgroups (a
    container's), v2 and v1, from its own cgroup up to the hierarchy's top; None where none
    is set. ``proc`` and ``root`` stand for ``/proc/self`` and ``/`` (tests: a fake tree)."""
    free = []
    for folder, kind in _memory_cgroups(proc, root):
        limit_name, usage_name, _ = _CGROUP_FILES[kind]
        limit, usage = _read(folder / limit_name), _read(folder / usage_name)
        if limit is not None and usage is not None and limit.isdigit() and usage.isdigit():
            free.append(int(limit) - int(usage))
    return min(free, default=None)


def _memory_cgroups(proc: Path, root: Path) -> list[tuple[Path, str]]:
    """``(folder, "cgroup2" | "cgroup")`` of each memory cgroup this process is in, its own
    and each one above it, in the v2 hierarchy (``0::/path``) and v1's memory controller
    (``N:memory:/path``), mounted where ``mountinfo`` says."""
    mountinfo = _read(proc / "mountinfo") or ""
    found = []
    for line in (_read(proc / "cgroup") or "").splitlines():
        number, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        kind = "cgroup2" if number == "0" else "cgroup"
        if kind == "cgroup" and "memory" not in controllers.split(","):
            continue
        mount_root, mount_point = _cgroup_mount(mountinfo, kind) or ("/", _CGROUP_FILES[kind][2])
        top = root / mount_point.lstrip("/")
        inside = os.path.relpath(path or "/", mount_root)
        folder = top if inside.startswith("..") else top / inside  # outside the mount: its top
        found.append((folder, kind))
        while folder != top and top in folder.parents:
            folder = folder.parent
            found.append((folder, kind))
    return found


def _cgroup_mount(mountinfo: str, kind: str) -> tuple[str, str] | None:
    """(its root within the hierarchy, mount point) of the v2 hierarchy or of v1's memory
    controller, from ``/proc/self/mountinfo``."""
    for line in mountinfo.splitlines():
        fields, _, fs = line.partition(" - ")
        fs_type, _, options = ([*fs.split(), "", "", ""])[:3]
        if fs_type == kind and (kind == "cgroup2" or "memory" in options.split(",")):
            return fields.split()[3], fields.split()[4]
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
