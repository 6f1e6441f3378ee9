"""SPADE's spec (Park et al. 2019, GauGAN): label maps to images, the paper's hinge loss,
feature matching, VGG loss and two-time-scale Adam, and the KL term of its style encoder
(the trainer: :mod:`translate.training.models.spade`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from translate.data.layout import LABELS
from translate.training.config import LossConfig
from translate.training.specs import TRAINERS, TrainerSpec
from translate.training.specs.pix2pixhd import VGG_LAYERS


@dataclass
class SPADELoss(LossConfig):
    gan_mode: str = "hinge"
    feature_matching: float = 10.0  # the paper's lambda_feat, on the multiscale D's features
    # the paper's lambda_vgg: VGG19 feature L1 to the target, on when perceptual_weights names
    # a local file (none can be downloaded here), off without one
    lambda_vgg: float = 10.0
    perceptual_weights: str | None = None  # torchvision's VGG19 state dict (vgg19-dcbb9e9d.pth)
    # VGG19 layers and their weights: the authors' VGGLoss, pix2pixHD's
    perceptual_layers: dict[str, float] = field(default_factory=lambda: dict(VGG_LAYERS))
    # KL of the style codes to N(0, I), summed over a code, averaged over the batch; only
    # with a style encoder (generator.options.style_dim)
    lambda_kld: float = 0.05
    non_negative = ("feature_matching", "lambda_vgg", "lambda_kld")


@TRAINERS.declare_spec("spade", "translate.training.models.spade:SPADE")
class SPADESpec(TrainerSpec):
    data = LABELS
    Loss = SPADELoss
    defaults = {
        # the paper's: batch norm in SPADE, spectral norm (the builder's defaults)
        "generator": {"name": "spade"},
        # conditional (the label map beside the image): two scales of PatchGANs with instance
        # and spectral norm, the paper's; its n_layers_D 4 counts the first convolution, so
        # it is the PatchGAN's default n_layers 3
        "discriminator": {
            "name": "multiscale",
            "options": {"norm": "instance", "num_scales": 2, "spectral_norm": True},
        },
        # two time-scale update rule: D learns 4x faster, no momentum
        "optim": {"lr_g": 1e-4, "lr_d": 4e-4, "beta1": 0.0, "beta2": 0.9},
    }
