"""The trainer-aware half of the config: a validated :class:`Config` for a ``model``.

:mod:`translate.training.config` is the schema (the dataclasses, their checks, YAML and
``--set``); the trainers import it. This module sits above both: it takes the chosen
trainer's defaults and ``Loss`` type, then its checks, so that neither the schema nor the
trainers import each other back.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from translate.data.layout import HR, LABELS, UNPAIRED
from translate.training.config import (
    Config,
    OverrideError,
    build_config,
    check_values,
    label_count,
    merge,
    read_config,
    set_key,
)
from translate.training.specs import TRAINERS, TrainerSpec


def trainer_spec(model: Any) -> type[TrainerSpec]:
    """The spec of the trainer registered as ``model``: its ``defaults``, ``Loss`` and
    checks, read without importing the trainer (nor torch)."""
    try:
        return TRAINERS.spec(str(model))
    except ValueError as exc:
        raise ValueError(f"config key 'model': {exc}") from None


def validate(config: Config) -> None:
    """Checks that need no data: the values, then what the trainer asks of them."""
    check_values(config)
    if config.data.single_image is not None:
        _check_single_image(config)
    trainer = trainer_spec(config.model)
    if config.data.degradation is not None and trainer.data_kind(config) != HR:
        takers = [n for n in TRAINERS.names() if TRAINERS.spec(n).data_kind(config) == HR]
        raise ValueError(
            f"config key 'data.degradation': model {config.model!r} trains on "
            f"{trainer.data_kind(config)} data; a degradation makes the LR inputs of HR images "
            f"for {', '.join(takers)}"
        )
    kind = trainer.data_kind(config)
    if config.data.label_nc is not None and kind != LABELS:
        takers = [n for n in TRAINERS.names() if TRAINERS.spec(n).data_kind(config) == LABELS]
        raise ValueError(
            f"config key 'data.label_nc': model {config.model!r} trains on {kind} data, not "
            f"label maps (read by: {', '.join(takers) or 'no trainer yet'}); remove the key"
        )
    if kind == LABELS:
        label_count(config)
    trainer.check_config(config)


def _check_single_image(config: Config) -> None:
    """Single-image training gives unpaired items and validates on the training A image."""
    trainer = trainer_spec(config.model)
    if trainer.data != UNPAIRED:
        takers = [n for n in TRAINERS.names() if TRAINERS.spec(n).data == UNPAIRED]
        raise ValueError(
            f"config key 'data.single_image': model {config.model!r} trains on "
            f"{trainer.data} data; single-image training needs a trainer of unpaired data "
            f"({', '.join(takers)})"
        )
    if config.data.val_split not in ("auto", "train"):
        raise ValueError(
            f"config key 'data.val_split': {config.data.val_split!r}, but data.single_image "
            "has no held-out images (validation shows the whole training A image); leave it "
            "at auto"
        )
    for key, value in (("max_dataset_size", None), ("serial", False)):
        if getattr(config.data, key) != value:  # a folder's options: refused, not ignored
            raise ValueError(
                f"config key 'data.{key}': {getattr(config.data, key)!r} applies to a dataset "
                "folder; data.single_image has one image per domain"
            )
    if config.data.preprocess.mode != "crop":
        raise ValueError(
            f"config key 'data.preprocess.mode': {config.data.preprocess.mode!r}, but "
            "data.single_image cuts crop_size crops at random scales (data.single_image."
            "scale); set mode: crop"
        )


def _from_dict(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> Config:
    data = copy.deepcopy(data or {})
    for assignment in overrides:
        set_key(data, assignment)
    trainer = trainer_spec(data.get("model", "pix2pix"))
    tree = merge(trainer.defaults, data)
    tree.setdefault("loss", {})  # built as the trainer's Loss even when not given
    config = build_config(tree, trainer.Loss)
    validate(config)
    return config


def _culprit(
    data: dict[str, Any], overrides: list[str] | tuple[str, ...], error: str
) -> str | None:
    """The override that brings ``error``: the last of the shortest prefix of ``overrides``
    that gives it; None when ``data`` alone gives it (the file's own error)."""
    for count in range(len(overrides)):
        try:
            _from_dict(data, overrides[:count])
        except ValueError as exc:
            if str(exc) == error:
                return overrides[count - 1] if count else None
    return overrides[-1]


def from_dict(data: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """A validated config: model defaults, then ``data``, then ``overrides`` (``a.b=value``).

    An error that ``data`` alone does not give is an :class:`OverrideError` naming the
    ``--set`` that brings it, so that a typo in an override is not blamed on the file."""
    try:
        return _from_dict(data, overrides)
    except ValueError as exc:
        culprit = _culprit(data, overrides, str(exc)) if overrides else None
        if culprit is None:
            raise
        raise OverrideError(f"--set {culprit}: {exc}") from exc


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config file; errors name the file and the bad key."""
    data = read_config(path)
    try:
        return from_dict(data, overrides)
    except OverrideError:
        raise
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
