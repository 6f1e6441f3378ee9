"""The trainers by name, without torch: each module here declares a trainer's spec (what it
trains on, its ``loss`` section, its defaults and config checks) and registers it in
``TRAINERS`` with where its trainer class lives (``translate.training.models``), imported
only when a run builds it. A config is validated, and the help lists the trainers, from the
specs alone.

A new trainer is a spec module here and a trainer module in ``translate.training.models``
whose class subclasses the spec (see CONTRIBUTING.md); importing this package imports every
module in it, so neither the engine nor the config needs to list the trainers.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, ClassVar

from translate.networks.registry import Registry
from translate.training.config import Config, LossConfig


class TrainerSpec:
    """A trainer's declarations, which the config and the engine read without building it:

    - ``data``: what it trains on, ``"paired"`` (items ``input``/``target``) or
      ``"unpaired"`` (items ``A``/``B``), as ``translate.data.layout`` names them;
    - ``Loss``: its loss dataclass (a :class:`LossConfig`), the type of ``config.loss``;
    - ``defaults``: the config sections where its defaults differ from the dataclasses';
    - ``best_metric``: the validation value (a ``metrics.jsonl`` key) that picks
      ``generator_best``, lower is better unless ``best_higher`` (PSNR);
    - ``baseline``: the name of what ``Validation.baseline`` holds, when it holds anything;
    - :meth:`data_kind` and :meth:`check_config`.

    The trainer class subclasses its spec, so it declares the same.
    """

    data: ClassVar[str] = ""
    Loss: ClassVar[type[LossConfig]] = LossConfig
    defaults: ClassVar[dict[str, Any]] = {}
    best_metric: ClassVar[str] = "val_L1"
    best_higher: ClassVar[bool] = False
    baseline: ClassVar[str] = ""

    @classmethod
    def data_kind(cls, config: Config) -> str:
        """The data kind ``config`` trains on (``translate.training.datasets.DATASETS``):
        ``data``, unless the trainer takes several (SR: paired or HR only)."""
        return cls.data

    @classmethod
    def check_config(cls, config: Config) -> None:
        """Refuse option combinations this trainer cannot train (before any data is read)."""


class TrainerRegistry(Registry):
    """Trainer classes by name (``config.model``), each with its spec, read without
    importing the class; a class registered directly (a test's) is its own spec."""

    def __init__(self) -> None:
        super().__init__("model")
        self._specs: dict[str, type[TrainerSpec]] = {}  # "module:qualname" -> its spec

    def declare_spec(
        self, name: str, target: str
    ) -> Callable[[type[TrainerSpec]], type[TrainerSpec]]:
        """Register the decorated spec as ``name``'s, built by ``target``
        (``"module:Class"``, a subclass of the spec)."""

        def decorator(spec: type[TrainerSpec]) -> type[TrainerSpec]:
            self.declare(target, name)
            self._specs[target] = spec
            return spec

        return decorator

    def spec(self, name: str) -> type[TrainerSpec]:
        """The declarations of the trainer ``name``; ``ValueError`` for an unknown name."""
        builder, _ = self._lookup(name)
        return self._specs[builder] if isinstance(builder, str) else builder  # type: ignore[return-value]

    def get(self, name: str) -> Callable[..., Any]:
        spec = self.spec(name)
        cls = super().get(name)
        if not (isinstance(cls, type) and issubclass(cls, spec)):
            raise TypeError(f"trainer {name!r}: {cls} does not subclass its spec {spec}")
        return cls


TRAINERS = TrainerRegistry()

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
