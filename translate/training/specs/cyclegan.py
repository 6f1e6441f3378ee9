"""CycleGAN's spec: unpaired data, cycle and identity weights, the checks of its channels
(the trainer: :mod:`translate.training.models.cyclegan`)."""

from __future__ import annotations

from dataclasses import dataclass

from translate.training.config import Config
from translate.training.specs import TRAINERS, TrainerSpec
from translate.training.specs.semantic import SemanticLossConfig, check_semantic


@dataclass
class CycleGANLoss(SemanticLossConfig):
    gan_mode: str = "lsgan"
    lambda_a: float = 10.0  # cycle A -> B -> A
    lambda_b: float = 10.0  # cycle B -> A -> B
    lambda_identity: float = 0.5  # relative to lambda_a / lambda_b


@TRAINERS.declare_spec("cyclegan", "translate.training.models.cyclegan:CycleGAN")
class CycleGANSpec(TrainerSpec):
    data = "unpaired"
    Loss = CycleGANLoss
    best_metric = "val_cycle_L1"
    defaults = {
        "generator": {"name": "resnet_9blocks", "options": {"norm": "instance"}},
        "discriminator": {"name": "patch", "options": {"norm": "instance"}, "pool_size": 50},
    }

    @classmethod
    def check_config(cls, config: Config) -> None:
        a_ch, b_ch = config.data.input_channels, config.data.output_channels
        if config.loss.lambda_identity > 0 and a_ch != b_ch:
            raise ValueError(
                "config key 'loss.lambda_identity': the identity loss needs domains with the "
                f"same channels (data.input_channels {a_ch}, data.output_channels {b_ch}); "
                "set it to 0"
            )
        check_semantic(config)
