"""Read a ``torch.save`` file without trusting it.

``torch.load(weights_only=True)`` runs no pickled code, but it still allocates every
storage the file holds, sized by the file: a zip record whose header declares 8 GiB (a few
MB of deflated zeros) is allocated before anything fails. So the sizes are checked first,
from the zip's central directory and the pickle's storage declarations (read from its
opcodes, nothing runs): each record must be exactly the bytes its tensors declare, and all
of them must fit in the free memory. Every failure is one line naming the file.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch

from translate.core.runtime import free_memory

# Bytes per element of each storage class a torch.save pickle names; UntypedStorage
# (newer dtypes) declares its size in bytes.
_ITEMSIZE = {
    f"torch.{name}": dtype.itemsize
    for dtype, name in torch.storage._dtype_to_storage_type_map().items()
} | {"torch.UntypedStorage": 1, "torch.storage.UntypedStorage": 1}
_MARK = object()
# A state dict's pickle takes about 200 bytes a tensor: KBs, a few MB for the largest nets.
# It is read into memory to be scanned, so one that unpacks to more is refused unread.
MAX_PICKLE_BYTES = 64 << 20


def is_torchscript(path: str | os.PathLike[str]) -> bool:
    """TorchScript archives (``torch.jit.save``) are zip files, like ``torch.save``'s, but
    also hold the module's constants."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


@contextmanager
def torchscript_allowed() -> Iterator[None]:
    """Without the notice torch >= 2.10 gives on every ``torch.jit`` call (TorchScript is
    deprecated): where TorchScript is the format asked for, the notice would only tell a
    user to rewrite our code."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated", FutureWarning)
        yield


def load_torchscript(path: str | os.PathLike[str], kind: str = "TorchScript module") -> Any:
    """``torch.jit.load(path)`` on the CPU, after :func:`check_sizes`; an unreadable file is a
    one-line ``ValueError`` starting with ``path``. TorchScript runs no Python, so loading
    one cannot run code the file names."""
    path = Path(path)
    try:
        check_sizes(path)
        with torchscript_allowed():
            return torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, OSError, zipfile.BadZipFile) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path}: not a readable {kind} ({reason})") from exc


@dataclass
class PickleScan:
    """What a pickle stream names and declares, read from its opcodes."""

    globals: list[str] = field(default_factory=list)
    storages: dict[str, int] = field(default_factory=dict)  # key -> bytes declared
    complete: bool = False  # the first pickle parsed to its end


def load(path: str | os.PathLike[str], kind: str = "torch checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, after :func:`check_sizes`.

    Raises ``ValueError`` in one line starting with ``path``: ``refused: ...`` for a file
    that would run code or take more memory than it holds, ``not a readable {kind} (...)``
    for a damaged one.
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(f"{path}: not a readable {kind} (empty file, 0 bytes)")
    try:
        check_sizes(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except zipfile.BadZipFile as exc:  # a record's CRC, which torch does not check
        raise ValueError(f"{path}: not a readable {kind} ({exc})") from exc
    except pickle.UnpicklingError as exc:
        # torch raises this both for a file that names code to run and for a damaged one,
        # in ten lines worded differently across versions; the opcodes tell them apart.
        scan = scan_file(path)
        if not scan.complete or not scan.globals:
            raise ValueError(f"{path}: not a readable {kind} (corrupt pickle)") from exc
        shown = [n for n in scan.globals if not _is_tensor_machinery(n)] or scan.globals
        raise ValueError(
            f"{path}: refused: would run code: the file holds pickled Python objects "
            f"({', '.join(shown[:3])}{', ...' if len(shown) > 3 else ''}), not just tensors; "
            "save the generator's state_dict() instead"
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path}: not a readable {kind} ({reason})") from exc


def check_sizes(path: Path) -> None:
    """Refuse a file whose storages would take more memory than it holds or than is free,
    before anything is allocated."""
    if not zipfile.is_zipfile(path):
        # The legacy format: pickles, then each storage's raw bytes; torch allocates the
        # declared size before reading them.
        declared = sum(scan_file(path).storages.values())
        if declared > path.stat().st_size:
            raise ValueError(
                f"{path}: refused: damaged or tampered: its tensors declare "
                f"{_size(declared)} but the file holds {_size(path.stat().st_size)}; "
                "download or save it again"
            )
        check_free(path, declared)
        return
    with zipfile.ZipFile(path) as archive:
        records = archive.infolist()
        check_free(path, sum(r.file_size for r in records))
        for record in records:
            if record.filename.endswith("data.pkl") and record.file_size > MAX_PICKLE_BYTES:
                raise ValueError(
                    f"{path}: refused: damaged or tampered: its pickle {record.filename} "
                    f"unpacks to {record.file_size:,} bytes, more than a state dict's "
                    f"{MAX_PICKLE_BYTES:,}; download or save it again"
                )
        scan = _scan_archive(archive)
    for record in records:
        folder, _, key = record.filename.rpartition("/")
        if not folder.endswith("data") or folder.endswith(".data"):
            continue
        expected = scan.storages.get(key)
        if record.file_size != expected:
            need = "no tensor uses it" if expected is None else f"its tensors need {expected:,}"
            raise ValueError(
                f"{path}: refused: damaged or tampered: record data/{key} unpacks to "
                f"{record.file_size:,} bytes but {need}; download or save it again"
            )


def check_free(path: Path, nbytes: int) -> None:
    """Refuse to load ``nbytes`` from ``path`` when the CPU has less memory free."""
    free = free_memory(torch.device("cpu"))
    if nbytes > free:
        raise ValueError(
            f"{path}: refused: loading it takes {_size(nbytes)}, more than the "
            f"{_size(free)} of memory free; free memory or use a machine with more"
        )


def scan_file(path: str | os.PathLike[str]) -> PickleScan:
    """:func:`scan_pickle` of a ``torch.save`` file: a zip archive's ``data.pkl``, or the
    pickles at the start of a legacy file or plain pickle."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return _scan_archive(archive)
    with _FileReader(path) as f:
        return scan_pickle(f)


class _FileReader(io.BufferedReader):
    """A file whose reads never ask for more than it has left: a pickle opcode may declare
    a 2**40-byte argument, which a plain read would try to allocate before finding the file
    ends (genops then names it as truncated)."""

    def __init__(self, path: Path) -> None:
        super().__init__(io.FileIO(path, "rb"))
        self.size = os.fstat(self.fileno()).st_size

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size > 0:
            size = min(size, max(0, self.size - self.tell()))
        return super().read(size)


def _scan_archive(archive: zipfile.ZipFile) -> PickleScan:
    member = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
    return scan_pickle(io.BytesIO(archive.read(member) if member else b""))


def scan_pickle(stream: BinaryIO) -> PickleScan:
    """The classes and functions the pickles in ``stream`` name and the storages they declare
    (``torch.save``'s persistent ids), by following the opcodes on a stack of plain values;
    nothing is unpickled."""
    scan = PickleScan()
    try:
        while stream.read(1):
            stream.seek(-1, io.SEEK_CUR)
            stack: list[Any] = []
            memo: dict[int, Any] = {}
            for opcode, arg, _ in pickletools.genops(stream):
                _step(opcode, arg, stack, memo, scan)
            scan.complete = True
    except (ValueError, EOFError, UnicodeDecodeError, IndexError, KeyError):
        pass  # legacy files carry raw tensor bytes after their pickles
    scan.globals = list(dict.fromkeys(scan.globals))
    return scan


def _step(
    opcode: pickletools.OpcodeInfo,
    arg: Any,
    stack: list[Any],
    memo: dict[int, Any],
    scan: PickleScan,
) -> None:
    """Apply one opcode to ``stack``: values that persistent ids are built from (strings,
    numbers, globals, tuples, the memo) are kept; anything else is a ``None`` stand-in."""
    name = opcode.name
    if name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
        memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
        return
    before = opcode.stack_before
    if pickletools.markobject in before:
        mark = len(stack) - 1 - stack[::-1].index(_MARK)
        items = stack[mark + 1 :]
        del stack[mark:]
        del stack[len(stack) - before.index(pickletools.markobject) :]
    else:
        items = stack[len(stack) - len(before) :] if before else []
        del stack[len(stack) - len(items) :]
    if name == "MARK":
        stack.append(_MARK)
    elif name in ("GET", "BINGET", "LONG_BINGET"):
        stack.append(memo[arg])
    elif name in ("GLOBAL", "INST", "STACK_GLOBAL"):
        glob = arg.replace(" ", ".") if name != "STACK_GLOBAL" else ".".join(map(str, items))
        scan.globals.append(glob)
        stack.append(_Global(glob))
    elif name.startswith("TUPLE") or name == "EMPTY_TUPLE":
        stack.append(tuple(items))
    elif name == "BINPERSID":
        _declare(items[0], scan)
        stack.append(None)
    else:
        value = arg if isinstance(arg, (str, int)) else None
        stack.extend([value] * len(opcode.stack_after))


class _Global(str):
    """A global's dotted name on the scan's stack, told apart from a string."""


def _declare(pid: Any, scan: PickleScan) -> None:
    """Record a storage persistent id: ``("storage", type, key, location, numel, ...)``."""
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
        return
    itemsize = _ITEMSIZE.get(pid[1]) if isinstance(pid[1], _Global) else None
    numel = pid[4]
    if itemsize is None or not isinstance(numel, int):
        raise ValueError(f"unknown storage declaration {pid[:2]!r}")
    scan.storages[str(pid[2])] = numel * itemsize


def _is_tensor_machinery(name: str) -> bool:
    """Globals that every torch.save of plain tensors names; not worth showing a user."""
    return name == "collections.OrderedDict" or (
        name.startswith("torch.") and (name.startswith("torch._utils.") or "Storage" in name)
    )


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"
