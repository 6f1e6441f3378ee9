"""The trainers, by name: each module in this package registers its trainer in ``TRAINERS``.

A new trainer is a new module here (see CONTRIBUTING.md); importing the package imports
every module in it, so neither the engine nor the config needs to list the trainers.
"""

from __future__ import annotations

import importlib
import pkgutil

from translate.networks.registry import Registry

TRAINERS = Registry("model")

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
