"""The check of a named thing's keyword options (a network's, a degradation's) against the
options it takes: one rule and one wording wherever things are built by name."""

from __future__ import annotations

import difflib
import inspect
from typing import Any


def check_options(
    options: dict[str, Any], valid: dict[str, Any], owner: str, listed: list[str] | None = None
) -> None:
    """Raise ``ValueError`` for an option not in ``valid`` (option -> default, or
    ``inspect.Parameter.empty``), naming ``owner`` (``"generator 'unet'"``), the close
    matches and the valid options (``listed``, else all); for a value whose type differs
    from the default's (``ngf: "24"``; a list and a tuple are one type; an int may stand for
    a float); or for an int option (a count or a size) below 0. The message starts with the
    option."""
    for key, value in options.items():
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
            hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
            raise ValueError(
                f"{key}: unknown option for {owner}; {hint}valid options: "
                f"{', '.join(valid if listed is None else listed) or 'none'}"
            )
        default = valid[key]
        if default is inspect.Parameter.empty or default is None:
            continue
        if isinstance(default, list | tuple):  # YAML gives a list where Python has a tuple
            expected, kind = (list, tuple), "list"
        else:  # bool is an int subclass, and an int may stand for a float, not the reverse
            expected = (float, int) if type(default) is float else type(default)
            kind = type(default).__name__
        if isinstance(value, bool) is not isinstance(default, bool) or not isinstance(
            value, expected
        ):
            raise ValueError(
                f"{key}: expected {kind} (like the default {default!r}), got {value!r}"
            )
        # a count or a size is never negative; the constructor checks where 0 is wrong
        if type(default) is int and value < 0:
            raise ValueError(f"{key}: must be 0 or more, got {value}")
