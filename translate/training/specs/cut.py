"""CUT's and FastCUT's spec: unpaired data, the PatchNCE keys and the reference's two modes
(the trainer: :mod:`translate.training.models.cut`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from translate.training.config import Config
from translate.training.specs import TRAINERS, TrainerSpec
from translate.training.specs.semantic import SemanticLossConfig, check_semantic

MODES = {
    # mode -> lambda_nce, nce_idt, flip_equivariance: the reference's CUT and FastCUT, but
    # FastCUT's PatchNCE weight is CUT's 1, not the reference's 10: at 10 the GAN term is a
    # tenth of G's loss and D tells every output patch from a real one within 100 steps on
    # worldmaps tiles (docs/trainers/cut.md, "Keeping both players in play")
    "cut": (1.0, True, False),
    "fastcut": (1.0, False, True),
}


@dataclass
class CUTLoss(SemanticLossConfig):
    gan_mode: str = "lsgan"
    mode: str = "cut"  # cut or fastcut: the defaults of the three keys below
    lambda_nce: float | None = None  # 1 (the reference's FastCUT: 10)
    nce_idt: bool | None = None  # identity NCE on domain B (G(B) vs B); cut only
    flip_equivariance: bool | None = None  # flip the input half of the time; fastcut only
    lambda_gan: float = 1.0  # weight of the GAN term
    nce_layers: list[int] = field(default_factory=lambda: [0, 4, 8, 12, 16])  # G tap points
    num_patches: int = 256  # sampled per layer and image
    nce_t: float = 0.07  # temperature
    mlp_units: int = 256  # width of each layer's 2-layer projection head

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        lambda_nce, nce_idt, flip = MODES[self.mode]
        self.lambda_nce = lambda_nce if self.lambda_nce is None else self.lambda_nce
        self.nce_idt = nce_idt if self.nce_idt is None else self.nce_idt
        self.flip_equivariance = flip if self.flip_equivariance is None else self.flip_equivariance
        for key in ("num_patches", "mlp_units"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be at least 1; got {getattr(self, key)}")
        if self.nce_t <= 0:
            raise ValueError(f"nce_t must be positive; got {self.nce_t}")
        if not self.nce_layers:
            raise ValueError("nce_layers must name at least one generator tap point")


@TRAINERS.declare_spec("cut", "translate.training.models.cut:CUT")
class CUTSpec(TrainerSpec):
    data = "unpaired"
    Loss = CUTLoss
    best_metric = "val_NCE"
    defaults = {
        "generator": {"name": "resnet_9blocks", "options": {"norm": "instance", "init": "xavier"}},
        "discriminator": {"name": "patch", "options": {"norm": "instance", "init": "xavier"}},
    }

    @classmethod
    def check_config(cls, config: Config) -> None:
        a_ch, b_ch = config.data.input_channels, config.data.output_channels
        if config.loss.nce_idt and a_ch != b_ch:
            raise ValueError(
                "config key 'loss.nce_idt': the identity term feeds domain B to the generator, "
                f"which takes data.input_channels {a_ch} (B has {b_ch}); set it to false"
            )
        check_semantic(config)
