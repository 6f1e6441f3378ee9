"""Training: YAML configs, the engine, Pix2Pix and CycleGAN steps, checkpoints, run reports."""

from translate.training.config import Config, from_dict, load_config
from translate.training.engine import Trainer

__all__ = ["Config", "Trainer", "from_dict", "load_config"]
