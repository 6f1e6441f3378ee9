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
        # name -> (constructor, the defaults this name sets, e.g. resnet_6blocks: n_blocks=6)
        self._builders: dict[str, tuple[Callable[..., nn.Module], dict[str, Any]]] = {}

    def register(
        self, *names: str, **defaults: Any
    ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
        """Register ``builder`` under ``names``; ``defaults`` override its own defaults, so one
        constructor serves several named variants."""

        def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
            unknown = set(defaults) - set(inspect.signature(builder).parameters)
            if unknown:
                raise TypeError(f"{builder.__name__} has no option(s) {sorted(unknown)}")
            for name in names:
                self._builders[name] = (builder, defaults)
            return builder

        return decorator

    def names(self) -> list[str]:
        return sorted(self._builders)

    def options(self, name: str) -> list[str]:
        """The keyword options the named network accepts (besides its channel counts)."""
        params = inspect.signature(self._lookup(name)[0]).parameters
        return [p for p in params if p not in ("in_channels", "out_channels")]

    def get(self, name: str) -> Callable[..., nn.Module]:
        """The constructor registered under ``name`` (for trainers: the class itself)."""
        return self._lookup(name)[0]

    def defaults(self, name: str) -> dict[str, Any]:
        """Each option's default for the named network (the variant's, else the builder's)."""
        builder, defaults = self._lookup(name)
        params = inspect.signature(builder).parameters
        own = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
        return {**own, **defaults}

    def _lookup(self, name: str) -> tuple[Callable[..., nn.Module], dict[str, Any]]:
        try:
            return self._builders[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}"
            ) from None

    def check_options(self, name: str, options: dict[str, Any]) -> None:
        """Raise ``ValueError`` for an unknown name or option, or a value whose type differs
        from the option's default (``ngf: "24"``); the message starts with the option."""
        builder, _ = self._lookup(name)
        valid = inspect.signature(builder).parameters
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(map(repr, unknown))} for {self.kind} {name!r}; "
                f"valid options: {', '.join(self.options(name))}"
            )
        for key, value in options.items():
            default = valid[key].default
            if default is inspect.Parameter.empty or default is None:
                continue
            # bool is an int subclass, and an int may stand for a float, not the reverse.
            expected = (float, int) if type(default) is float else type(default)
            if isinstance(value, bool) is not isinstance(default, bool) or not isinstance(
                value, expected
            ):
                raise ValueError(
                    f"{key}: expected {type(default).__name__} (like the default "
                    f"{default!r}), got {value!r}"
                )

    def build(self, name: str, **kwargs: Any) -> nn.Module:
        builder, defaults = self._lookup(name)
        self.check_options(name, kwargs)
        return builder(**{**defaults, **kwargs})


GENERATORS = Registry("generator")
DISCRIMINATORS = Registry("discriminator")
