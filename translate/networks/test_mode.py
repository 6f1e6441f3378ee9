"""Deprecated: this module is now :mod:`translate.networks.eval_mode` (``TestMode`` is
``EvalMode``, ``set_test_mode`` is ``set_eval_mode``); the old names resolve, with a
``DeprecationWarning``, for one release."""

from __future__ import annotations

from translate.deprecation import renamed_attributes

__getattr__ = renamed_attributes(
    __name__,
    "translate.networks.eval_mode",
    {"TestMode": "EvalMode", "set_test_mode": "set_eval_mode"},
    every_name=True,
)
