"""Atomic, verified file writes: a temporary file beside the target, fsynced, size-checked,
then renamed over it.

A crash, Ctrl-C or full disk mid-write leaves either the old file or none, never a
truncated one. Encoders can write short without raising (PIL's C encoders ignore a short
``write()`` on a nearly full disk), so :func:`atomic_open` counts every byte handed to it,
writes them all or raises, and compares the fsynced file's size with that count.

Temporary names are short (``.tr-XXXXXXXX.tmp`` plus the target's suffix), so a target
name near the filesystem's 255-byte limit still fits, and a writer holds an ``flock`` on its
temporary file until the rename: the first write into a folder removes temporary files of
our naming that no live process holds (left by a killed run).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows: no flock, so stale temporary files are not cleaned
    fcntl = None  # type: ignore[assignment]

TEMP_PREFIX = ".tr-"
# Ours, and the longer names earlier versions used (.<stem>.<mkstemp chars>.tmp<suffix>).
_TEMP_NAME = re.compile(r"^(\.tr-[a-z0-9_]{8}\.tmp|\..+\.[a-z0-9_]{8}\.tmp)(\.[A-Za-z0-9]{1,8})?$")
_MAX_SUFFIX = 9  # a longer suffix is dropped from the temporary name


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask can only be read by setting it, which races with threads.
_FILE_MODE = 0o666 & ~_read_umask()
_cleaned: set[Path] = set()
_cleaned_lock = threading.Lock()


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of our temporary file names."""
    return _TEMP_NAME.match(name) is not None


def _try_lock(fd: int) -> bool:
    """Take an exclusive flock without waiting; True if held (or locks are unsupported)."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a filesystem without locks: cannot tell live from stale
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete our temporary files in ``folder`` (not below) that no live writer holds."""
    removed: list[Path] = []
    if fcntl is None:
        return removed
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not is_temp_name(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(entry.path)  # while locked, so a writer that locks next sees nlink 0
            removed.append(Path(entry.path))
        except OSError:  # held by a live writer, or already gone
            pass
        finally:
            os.close(fd)
    return removed


def _clean_once(folder: Path) -> None:
    with _cleaned_lock:
        if folder in _cleaned:
            return
        _cleaned.add(folder)
    remove_stale_temps(folder)


def _make_temp(target: Path) -> tuple[int, Path]:
    """A new locked temporary file beside ``target``: (fd open for writing, path)."""
    suffix = target.suffix if len(target.suffix) <= _MAX_SUFFIX else ""
    while True:
        fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=f".tmp{suffix}", dir=target.parent)
        # A cleaner may have unlinked the file between mkstemp and the lock: start again.
        if _try_lock(fd) and os.fstat(fd).st_nlink > 0:
            break
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
    # mkstemp makes the file private (0600); outputs get the mode a plain open() would give.
    os.fchmod(fd, _FILE_MODE)
    return fd, Path(name)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable; some filesystems cannot fsync a folder."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _CountingWriter(io.RawIOBase):
    """A write-only file over ``fd`` that writes every byte or raises, and counts them.

    It has no ``fileno()``, so encoders write through it instead of straight to the fd.
    """

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self.written = 0
        # The first failed write: a caller (torch.save) may bury it under an error of its own.
        self.error: OSError | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):
                n = os.write(self._fd, view[done:])
                if n == 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                done += n
        except OSError as exc:
            self.error = self.error or exc
            raise
        self.written += done
        return done


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Yield a binary file to write; it replaces ``path`` only if the block succeeds and the
    fsynced file holds every byte written (else ``OSError``, the target untouched)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _clean_once(target.parent)
    fd, tmp = _make_temp(target)
    writer = _CountingWriter(fd)
    try:
        yield writer  # type: ignore[misc]
        os.fsync(fd)
        size = os.fstat(fd).st_size
        if size != writer.written:
            raise OSError(errno.EIO, f"{target}: only {size} of {writer.written} bytes written")
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if writer.error is not None and exc is not writer.error:
            raise writer.error from exc
        raise
    finally:
        os.close(fd)
    _fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path for writers that only take a file name; it is fsynced and
    replaces ``path`` only if the block succeeds. Prefer :func:`atomic_open`, which also
    checks the size.

    The temporary name keeps the target's suffix so that writers that pick a format from
    the extension (matplotlib, torch.onnx) still work.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _clean_once(target.parent)
    fd, tmp = _make_temp(target)  # the lock stays on this fd while the writer reopens it
    try:
        yield tmp
        with open(tmp, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | memoryview) -> None:
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
