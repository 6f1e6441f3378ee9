"""Build networks by name: a registry maps names to constructors and checks their options."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn


class Registry:
    """Names -> constructors. Unknown names and options raise ``ValueError`` listing valid ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[str, Callable[..., nn.Module]] = {}

    def register(
        self, *names: str
    ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
        def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
            for name in names:
                self._builders[name] = builder
            return builder

        return decorator

    def names(self) -> list[str]:
        return sorted(self._builders)

    def options(self, name: str) -> list[str]:
        """The keyword options the named network accepts (besides its channel counts)."""
        params = inspect.signature(self._lookup(name)).parameters
        return [p for p in params if p not in ("in_channels", "out_channels")]

    def _lookup(self, name: str) -> Callable[..., nn.Module]:
        try:
            return self._builders[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}"
            ) from None

    def build(self, name: str, **kwargs: Any) -> nn.Module:
        builder = self._lookup(name)
        valid = inspect.signature(builder).parameters
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(map(repr, unknown))} for {self.kind} {name!r}; "
                f"valid options: {', '.join(self.options(name))}"
            )
        return builder(**kwargs)


GENERATORS = Registry("generator")
DISCRIMINATORS = Registry("discriminator")
