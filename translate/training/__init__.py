"""Training: YAML configs, the engine, the trainers (Pix2Pix, CycleGAN, CUT/FastCUT,
distillation), checkpoints, run reports."""

from translate.training.config import Config
from translate.training.configure import from_dict, load_config
from translate.training.engine import Trainer

__all__ = ["Config", "Trainer", "from_dict", "load_config"]
