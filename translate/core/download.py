"""Fetching a file over HTTP(S) into a local path: progress bar, resume, clear offline errors.

Used for the reference's public datasets (``translate prepare download``) and pretrained
models (``translate convert horse2zebra ...``). A download goes to ``<dest>.part`` and is
renamed when complete, so ``dest`` existing means the whole file is there; an interrupted
download resumes from the ``.part`` file with an HTTP Range request.
"""

from __future__ import annotations

import http.client
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

# The reference code's server; TRANSLATE_MIRROR points every download at a mirror of it.
REFERENCE_SERVER = "http://efrosgans.eecs.berkeley.edu"
CHUNK = 1 << 16
TIMEOUT_S = 60


class DownloadError(FileNotFoundError):
    """A file that is not here and could not be fetched; the message names the URL and
    where to put the file (a FileNotFoundError, so commands report it as one)."""


def server() -> str:
    return os.environ.get("TRANSLATE_MIRROR", REFERENCE_SERVER).rstrip("/")


def translate_home() -> Path:
    """Cache folder for downloaded models: ``TRANSLATE_HOME``, default ``~/.cache/translate``."""
    return Path(os.environ.get("TRANSLATE_HOME", Path.home() / ".cache" / "translate"))


def _offline_help(url: str, dest: Path) -> str:
    return f"download {url} by other means and put it at {dest}, then run this again"


def fetch(url: str, dest: Path, progress: bool = True) -> Path:
    """``dest``, downloading ``url`` to it first unless it is already there.

    Raises :class:`DownloadError` when the server cannot be reached or the transfer breaks
    off (what arrived is kept; the next call resumes it).
    """
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the .part file already holds everything
            part.replace(dest)
            return dest
        message = f"{url}: HTTP {exc.code} {exc.reason}; {_offline_help(url, dest)}"
        raise DownloadError(message) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot reach {url} ({reason}); {_offline_help(url, dest)}") from None
    with response:
        if response.status != 206:  # the server ignored the Range: start again
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        bar = tqdm(
            total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
            desc=dest.name, disable=not progress, file=sys.stderr,
        )  # fmt: skip
        with bar, open(part, "ab" if have else "wb") as out:
            try:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as exc:
                raise DownloadError(
                    f"{url}: the download broke off after {out.tell()} bytes ({exc}); "
                    "run the command again to resume it"
                ) from None
            size = out.tell()
    if total is not None and size < total:
        raise DownloadError(
            f"{url}: the download broke off after {size} of {total} bytes; "
            "run the command again to resume it"
        )
    part.replace(dest)
    return dest
