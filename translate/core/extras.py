"""Optional extras (setup.cfg's extras_require): code that needs one imports it through
:func:`needs_extra`, so a missing package is one line naming the pip command, which the
``translate`` command prints without a traceback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class MissingExtra(ImportError):
    """An optional extra is not installed; the message says how to install it."""


@contextlib.contextmanager
def needs_extra(extra: str, needed_by: str) -> Iterator[None]:
    """Turn an ImportError inside the block into :class:`MissingExtra` for ``extra``."""
    try:
        yield
    except ImportError as exc:
        missing = exc.name or str(exc)
        raise MissingExtra(
            f"{needed_by} needs the {extra} extra ({missing} is missing): "
            f'pip install "translate[{extra}]"'
        ) from exc
