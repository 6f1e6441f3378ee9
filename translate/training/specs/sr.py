"""Super-resolution's spec: paired LR/HR or HR-only data, the loss terms of ESRGAN /
Real-ESRGAN's recipe and their checks (the trainer: :mod:`translate.training.models.sr`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from translate.data.layout import HR, PAIRED
from translate.training.config import Config, LossConfig
from translate.training.specs import TRAINERS, TrainerSpec

# Real-ESRGAN's train_realesrnet/realesrgan options: conv outputs, weights per layer.
REAL_ESRGAN_LAYERS = {
    "conv1_2": 0.1,
    "conv2_2": 0.1,
    "conv3_4": 1.0,
    "conv4_4": 1.0,
    "conv5_4": 1.0,
}

USM_TERMS = ("l1", "perceptual", "gan")


@dataclass
class SRLoss(LossConfig):
    lambda_l1: float = 1.0  # L1 to the HR target, on the [0, 1] scale (BasicSR's pixel_opt)
    # 0: no discriminator, the PSNR-oriented first stage (BasicSR's and Real-ESRGAN's);
    # Real-ESRGAN's GAN stage sets 0.1 (configs/sr_gan.yaml)
    lambda_gan: float = 0.0
    lambda_perceptual: float = 0.0  # VGG19 feature L1 (Real-ESRGAN: 1); needs the file below
    perceptual_weights: str | None = None  # torchvision's VGG19 state dict (vgg19-dcbb9e9d.pth)
    perceptual_layers: dict[str, float] = field(default_factory=lambda: dict(REAL_ESRGAN_LAYERS))
    # generator file, run directory or checkpoint whose generator this run starts from (the
    # PSNR stage's run, for GAN fine-tuning); same network and options as generator:
    pretrained: str | None = None
    # the terms whose HR target is unsharp-masked first (usm_sharpen): Real-ESRGAN trains
    # [l1, perceptual] against sharpened targets (l1_gt_usm, percep_gt_usm; gan_gt_usm off)
    usm_target: list[str] = field(default_factory=list)
    non_negative = ("lambda_l1", "lambda_gan", "lambda_perceptual")

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [t for t in self.usm_target if t not in USM_TERMS]
        if unknown:
            raise ValueError(
                f"usm_target: {', '.join(map(str, unknown))} is no loss term; the terms are "
                f"{', '.join(USM_TERMS)}"
            )


@TRAINERS.declare_spec("sr", "translate.training.models.sr:SuperResolution")
class SRSpec(TrainerSpec):
    data = "paired"  # or HR images alone ("hr"): data_kind
    Loss = SRLoss
    best_metric = "val_PSNR_Y"
    best_higher = True
    baseline = "bicubic"
    defaults = {
        # x4 at the class's defaults; no options here, as they would merge into another
        # network's (generator: {name: rrdbnet} takes none of srvgg_compact's)
        "generator": {"name": "srvgg_compact"},
        "discriminator": {"name": "unet_sn"},  # Real-ESRGAN's U-Net with spectral norm
        # HR pixels; the 8 symmetries of a square (BasicSR's use_hflip and use_rot)
        "data": {"preprocess": {"mode": "crop", "crop_size": 256, "rotate": True}},
        # BasicSR's Adam for both stages
        "optim": {"lr_g": 1e-4, "lr_d": 1e-4, "beta1": 0.9, "beta2": 0.99},
    }

    @classmethod
    def data_kind(cls, config: Config) -> str:
        return HR if config.data.degradation is not None else PAIRED

    @classmethod
    def check_config(cls, config: Config) -> None:
        d, loss = config.data, config.loss
        assert isinstance(loss, SRLoss)
        if d.degradation is not None and d.input_channels != d.output_channels:
            raise ValueError(
                f"config key 'data.input_channels': {d.input_channels}, but the LR inputs "
                f"data.degradation makes have the HR images' {d.output_channels} channels "
                "(data.output_channels)"
            )
        if d.degradation is None and d.degradation_options:
            raise ValueError(
                "config key 'data.degradation_options': set, but data.degradation is not; "
                "name the degradation (bicubic, realesrgan) or remove the options"
            )
        if loss.lambda_perceptual > 0 and not loss.perceptual_weights:
            raise ValueError(
                f"config key 'loss.lambda_perceptual': {loss.lambda_perceptual:g} needs a local "
                "VGG19 weights file (none can be downloaded here): set loss.perceptual_weights "
                "to torchvision's vgg19-dcbb9e9d.pth (its VGG19_Weights.IMAGENET1K_V1), or "
                "set loss.lambda_perceptual: 0"
            )
        if loss.lambda_gan == 0 and config.optim.d_steps != 1:
            raise ValueError(
                f"config key 'optim.d_steps': {config.optim.d_steps}, but loss.lambda_gan is "
                "0: there is no discriminator to update"
            )
        if d.degradation is not None:
            # last, as it imports torch: building the degradation checks its options, and
            # the generator's scale is what it declares (HR data only)
            from translate.data.degradations import build_degradation
            from translate.models.model_file import GeneratorSpec

            g = config.generator
            spec = GeneratorSpec.declared(g.name, d.input_channels, d.output_channels, g.options)
            try:
                build_degradation(d.degradation, spec.scale, **d.degradation_options)
            except ValueError as exc:
                key = "degradation" if "unknown degradation" in str(exc) else "degradation_options"
                raise ValueError(f"config key 'data.{key}': {exc}") from None
