"""pix2pixHD's spec: label maps (with ``data.label_nc``) or paired images in, its recipe's
losses (LSGAN, feature matching on a multi-scale conditional discriminator, VGG when a local
file is given) and the coarse-to-fine schedule (the trainer:
:mod:`translate.training.models.pix2pixhd`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from translate.data.layout import LABELS, PAIRED
from translate.networks.registry import GENERATORS
from translate.training.config import Config, LossConfig
from translate.training.specs import TRAINERS, TrainerSpec

# pix2pixHD's VGGLoss: the first ReLU of each block, the deeper ones weighted more
VGG_LAYERS = {
    "relu1_1": 1 / 32,
    "relu2_1": 1 / 16,
    "relu3_1": 1 / 8,
    "relu4_1": 1 / 4,
    "relu5_1": 1.0,
}


@dataclass
class Pix2PixHDLoss(LossConfig):
    gan_mode: str = "lsgan"  # the paper's
    feature_matching: float = 10.0  # the paper's lambda_feat
    # VGG19 feature L1 with this weight, only when perceptual_weights names a local file
    # (none can be downloaded here)
    lambda_perceptual: float = 10.0
    perceptual_weights: str | None = None  # torchvision's VGG19 state dict (vgg19-dcbb9e9d.pth)
    # VGG19 layers and their weights (the paper's: relu1_1 to relu5_1, 1/32 to 1)
    perceptual_layers: dict[str, float] = field(default_factory=lambda: dict(VGG_LAYERS))
    # coarse to fine: steps that train the global generator alone, first, on inputs and
    # targets downsampled as it sees them (0: the whole network from the first step)
    global_steps: int = 0
    # then steps of the whole at full resolution with the global generator frozen
    fix_global_steps: int = 0
    non_negative = ("lambda_perceptual", "global_steps", "fix_global_steps")


@TRAINERS.declare_spec("pix2pixhd", "translate.training.models.pix2pixhd:Pix2PixHD")
class Pix2PixHDSpec(TrainerSpec):
    data = PAIRED  # or label maps, with data.label_nc: data_kind
    Loss = Pix2PixHDLoss
    defaults = {
        "generator": {"name": "pix2pixhd"},
        # the paper's: three scales of 70x70-style PatchGANs, instance norm
        "discriminator": {"name": "multiscale", "options": {"norm": "instance"}},
    }

    @classmethod
    def data_kind(cls, config: Config) -> str:
        return LABELS if config.data.label_nc is not None else PAIRED

    @classmethod
    def check_config(cls, config: Config) -> None:
        loss, g = config.loss, config.generator
        assert isinstance(loss, Pix2PixHDLoss)
        kind = "labels" if config.data.label_nc is not None else "image"
        if g.options.get("input_kind", kind) != kind:
            raise ValueError(
                f"config key 'generator.options.input_kind': {g.options['input_kind']!r}, but "
                f"the data are {'label maps' if kind == 'labels' else 'images'} (the trainer "
                "sets it from data.label_nc); remove the key"
            )
        for key in ("global_steps", "fix_global_steps"):
            if not getattr(loss, key):
                continue
            options = {**GENERATORS.defaults(g.name), **g.options}
            if not options.get("n_local_enhancers"):
                raise ValueError(
                    f"config key 'loss.{key}': {getattr(loss, key)} steps of the coarse-to-fine "
                    f"schedule need a generator with a local enhancer (pix2pixhd, "
                    f"n_local_enhancers 1 or more); generator {g.name!r} has none. Set "
                    f"loss.{key}: 0"
                )
