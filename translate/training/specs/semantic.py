"""The loss keys and config checks of CyCADA's semantic-consistency term, which the unpaired
trainers share (:mod:`translate.training.semantic` computes it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from translate.training.config import Config, LossConfig

KEY = "config key 'loss.task_model'"


@dataclass
class SemanticLossConfig(LossConfig):
    """The loss keys of a trainer with the semantic-consistency term."""

    lambda_semantic: float = 0.0  # weight of the task model's cross-entropy on G(A); 0: off
    task_model: str | None = None  # TorchScript or translate model file of the task model


def check_semantic(config: Config) -> None:
    """The checks that need no file read: the weight, the path and the channels."""
    loss, data = config.loss, config.data
    if loss.lambda_semantic < 0:
        raise ValueError(
            f"config key 'loss.lambda_semantic': must be 0 or more, got {loss.lambda_semantic}"
        )
    if loss.lambda_semantic == 0:
        return
    if not loss.task_model:
        raise ValueError(
            f"{KEY}: loss.lambda_semantic {loss.lambda_semantic:g} needs a task model trained "
            "on domain A (a TorchScript file); name it, or set loss.lambda_semantic: 0"
        )
    if not Path(loss.task_model).exists():
        raise ValueError(f"{KEY}: {loss.task_model}: no such file or directory")
    if data.input_channels != data.output_channels:
        raise ValueError(
            f"config key 'loss.lambda_semantic': the task model sees images of domain A and "
            f"their translations, but data.input_channels is {data.input_channels} and "
            f"data.output_channels {data.output_channels}; set loss.lambda_semantic: 0"
        )
