"""The distillation trainer's spec, under two names: ``distill`` on paired data,
``distill_unpaired`` on unpaired domains (the trainer: :mod:`translate.training.models.distill`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from translate.data.layout import PAIRED, detect_layouts
from translate.training.config import Config, LossConfig, merge
from translate.training.specs import TRAINERS, TrainerSpec

if TYPE_CHECKING:
    from translate.models.model_file import LoadedModel


@dataclass
class DistillLoss(LossConfig):
    gan_mode: str = "lsgan"
    teacher: str = ""  # generator file, run directory, checkpoint or model name
    teacher_sha256: str = ""  # of the teacher's file; filled in at the start
    teacher_direction: str | None = None  # its only generator, else data.direction's
    lambda_teacher: float = 10.0  # L1 to the teacher's output
    lambda_distill: float = 1.0  # feature MSE through the 1x1 adapters (0: no adapters)
    lambda_gan: float = 1.0  # weight of the GAN term (against real target-domain images)
    lambda_target: float = 10.0  # L1 to the ground truth (paired data only)
    # The student's tap points compared; unset: its trunk_taps (the residual trunk's input
    # and blocks n/3, 2n/3 and n, the stages GAN Compression distills: [9, 12, 15, 18] in a
    # 9-block (mobile) ResNet), filled in at the start
    distill_layers: list[int] | None = None
    # the teacher's taps; unset: the same where their resolutions match, else paired by
    # resolution (match_taps) and filled in at the start
    teacher_layers: list[int] | None = None
    compression: float = 20.0  # default student width: teacher MACs / student MACs >= this
    non_negative = ("lambda_teacher", "lambda_distill", "lambda_gan", "lambda_target")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.compression < 1:
            raise ValueError(f"compression must be at least 1; got {self.compression}")
        taps, student = self.teacher_layers, self.distill_layers
        if taps is not None and student is not None and len(taps) != len(student):
            raise ValueError(f"teacher_layers {taps} must pair up with distill_layers {student}")


@TRAINERS.declare_spec("distill", "translate.training.models.distill:Distill")
class DistillSpec(TrainerSpec):
    data = "paired"
    Loss = DistillLoss
    defaults = {
        "generator": {"name": "mobile_resnet_9blocks", "options": {"norm": "instance"}},
        "discriminator": {"name": "patch", "options": {"norm": "instance"}},
    }

    @classmethod
    def check_config(cls, config: Config) -> None:
        if not config.loss.teacher:
            raise ValueError(
                "config key 'loss.teacher': name the teacher (a generator file, run "
                "directory, training or reference checkpoint, or model name)"
            )


@TRAINERS.declare_spec("distill_unpaired", "translate.training.models.distill:DistillUnpaired")
class DistillUnpairedSpec(DistillSpec):
    data = "unpaired"
    best_metric = "val_teacher_L1"  # no targets: the student that imitates its teacher best


def load_teacher(source: str) -> tuple[LoadedModel, Path]:
    """The teacher's generators (on the CPU) and the file they came from; any problem is a
    ``ValueError`` naming the teacher."""
    from translate.models.loading import load_model, resolve_model_path  # torch: to start

    try:
        path = resolve_model_path(source)
        return load_model(path), path
    except (OSError, ValueError, RuntimeError) as exc:
        raise ValueError(f"teacher: {exc}") from None


def distill_tree(teacher: str, data_root: Path, base: dict[str, Any]) -> dict[str, Any]:
    """The config tree of a distillation of ``teacher`` on ``data_root``: the teacher's
    preprocessing and channels, then ``base`` (a config file's tree), then the teacher and
    the data. The trainer is ``base``'s, else picked from the data: ``distill`` on paired
    data (or a folder not there yet, which the run reports), ``distill_unpaired`` on domains.
    """
    pre = load_teacher(teacher)[0].preprocess
    tree: dict[str, Any] = {
        "data": {
            "preprocess": vars(pre.transforms),
            "input_channels": pre.input_channels,
            "output_channels": pre.output_channels,
        }
    }
    tree = merge(
        merge(tree, base), {"data": {"root": str(data_root)}, "loss": {"teacher": teacher}}
    )
    if "model" not in tree:
        paired = data_root.is_dir() and any(x.data == PAIRED for x in detect_layouts(data_root))
        tree["model"] = "distill" if paired or not data_root.is_dir() else "distill_unpaired"
    return tree
