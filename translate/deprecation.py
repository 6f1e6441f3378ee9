"""Old names kept importable for one release after a rename, each use warning once per site."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any


def renamed_attributes(
    old_module: str, new_module: str, renames: Mapping[str, str], *, every_name: bool = False
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``old_module`` resolving each old name in ``renames`` to
    its new name in ``new_module`` with a ``DeprecationWarning`` saying what to import
    instead. ``every_name``: the whole module moved, so any other name of ``new_module``
    resolves too (under its own name), with the same warning."""

    def __getattr__(name: str) -> Any:
        new_name = renames.get(name, name if every_name else None)
        if new_name is None or new_name.startswith("__"):
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(new_module), new_name)
        warnings.warn(
            f"{old_module}.{name} is deprecated: use {new_module}.{new_name}",
            DeprecationWarning,
            stacklevel=2,
        )
        return value

    return __getattr__
