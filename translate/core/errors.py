"""The one place where the CLIs turn a user's error into one line and exit status 1.

A bad path, value or option raises ``ValueError`` (or a subclass such as ``DatasetError``),
``TypeError``, ``FileNotFoundError``/``NotADirectoryError``; a missing optional package raises
:class:`~translate.core.extras.MissingExtra`. Each command wraps its work in :func:`user_errors`, so
the message, not a traceback, is what the shell shows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import NoReturn

import click

from translate.core.extras import MissingExtra

USER_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    FileNotFoundError,
    NotADirectoryError,
    MissingExtra,
)


def printable(text: str) -> str:
    """``text`` as a terminal can show it: a file name that is not UTF-8 (which Python
    holds with surrogate escapes, ``\\udce9``) shows its real bytes (``\\xe9``). Every
    message that names a path goes through here."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def fail(message: str) -> NoReturn:
    """``Error: <message>`` on stderr, exit status 1 (click's convention)."""
    raise click.ClickException(printable(message))


@contextlib.contextmanager
def user_errors(
    kinds: tuple[type[Exception], ...] = USER_ERRORS,
    exit_with: Callable[[str], NoReturn] = fail,
) -> Iterator[None]:
    """Errors of ``kinds`` inside the block end the command through ``exit_with(message)``;
    ``translate train`` passes one that also tells torchrun."""
    try:
        yield
    except kinds as exc:
        exit_with(printable(str(exc)))
