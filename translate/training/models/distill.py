"""Distillation (GAN Compression, Li et al., CVPR 2020): a small student generator learns
to translate as a frozen teacher does.

The student (by default a depthwise-separable ``mobile_resnet_9blocks``, as wide as fits
``loss.compression`` times fewer MACs than the teacher) is trained on four terms:

- L1 to the teacher's output (``lambda_teacher``, GAN Compression's ``lambda_recon`` 10);
- feature distillation (``lambda_distill`` 1): at matched tap points the student's features,
  mapped to the teacher's widths by a learned 1x1 convolution per tap (built from the first
  batch), are pulled to the teacher's by MSE, summed over taps as in the reference;
- an LSGAN loss against a PatchGAN discriminator that sees real images of the target domain
  (``lambda_gan`` 1), so the student can also improve on the teacher;
- with paired data, L1 to the ground truth (``lambda_target`` 10).

The teacher is anything :func:`translate.models.loading.load_model` takes: a generator
file, a run directory, a training checkpoint, a reference checkpoint or a model name. The
trainer's stage (:meth:`Distill.prepare`, before the trainer is built) loads it, frozen and
in eval mode, and records its file (``loss.teacher_sha256``) and the student's width in the
config, so a resume refuses a changed teacher and builds the same student. The trainer keeps
it out of the module tree: it is in no state dict, optimizer or weight average. The student
is written as an ordinary ``AtoB`` generator file.

Two names, one trainer: ``distill`` trains on paired data, ``distill_unpaired`` on unpaired
domains (``translate distill`` picks by the dataset's layout).
"""

from __future__ import annotations

import copy
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from translate.core import metrics
from translate.core.process import Ranks
from translate.models.model_file import GeneratorSpec
from translate.networks import count_macs
from translate.networks.eval_mode import set_eval_mode
from translate.networks.registry import GENERATORS
from translate.training.base import Prepared, Stepper, Trainer, Validation, frozen, parameters
from translate.training.config import Config
from translate.training.specs.distill import DistillSpec, DistillUnpairedSpec, load_teacher

MAC_SIZE = (256, 256)  # where the default student's MAC budget is counted
WIDEST = 256  # the widest ngf the default student is searched up to
NARROWEST = 4  # the narrowest default student: below it a student barely learns


@dataclass(frozen=True)
class Teacher:
    """The frozen teacher (eval mode, no gradients) and the file it came from."""

    net: nn.Module
    spec: GeneratorSpec
    path: Path
    sha256: str  # of ``path``
    macs: int  # at MAC_SIZE


def load_frozen_teacher(config: Config) -> Teacher:
    """``loss.teacher``'s generator for this run: the same file as the run recorded
    (``loss.teacher_sha256``, when set), the direction ``loss.teacher_direction`` picks, and
    the data's channels; any mismatch is a ``ValueError`` naming the key and the file."""
    loss, data = config.loss, config.data
    teacher_file, path = load_teacher(loss.teacher)
    sha256 = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha256.update(chunk)
    digest = sha256.hexdigest()
    if loss.teacher_sha256 and loss.teacher_sha256 != digest:
        raise ValueError(
            f"config key 'loss.teacher': {path} changed since this run started (SHA-256 "
            f"{digest[:12]}..., the run recorded {loss.teacher_sha256[:12]}...); "
            "distill from the original teacher or start a new run"
        )
    direction = loss.teacher_direction or (
        next(iter(teacher_file.generators)) if len(teacher_file.generators) == 1 else data.direction
    )
    if direction not in teacher_file.generators:
        raise ValueError(
            f"config key 'loss.teacher_direction': {path} holds "
            f"{', '.join(teacher_file.generators)}, not {direction!r}"
        )
    net, spec = teacher_file.generators[direction], teacher_file.specs[direction]
    channels = (data.input_channels, data.output_channels)
    if (spec.in_channels, spec.out_channels) != channels:
        raise ValueError(
            f"teacher {path}: translates {spec.in_channels} to {spec.out_channels} "
            f"channels, the data has {channels[0]} and {channels[1]} "
            "(data.input_channels, data.output_channels)"
        )
    set_eval_mode(net, teacher_file.eval_mode)
    net.requires_grad_(False)
    macs = count_macs(net, (channels[0], *MAC_SIZE))
    return Teacher(net.eval(), spec, path, digest, macs)


def feature_distillation_loss(
    student: list[torch.Tensor], teacher: list[torch.Tensor], adapters: nn.ModuleList
) -> torch.Tensor:
    """Sum over taps of the MSE between ``adapter(student feature)`` and the teacher's."""
    terms = [
        F.mse_loss(adapter(s).float(), t.float())
        for s, t, adapter in zip(student, teacher, adapters, strict=True)
    ]
    return torch.stack(terms).sum()


def generator_macs(name: str, options: dict[str, Any], channels: tuple[int, int]) -> int:
    """MACs of generator ``name`` with ``options`` at :data:`MAC_SIZE`."""
    net = GENERATORS.build(name, in_channels=channels[0], out_channels=channels[1], **options)
    return count_macs(net, (channels[0], *MAC_SIZE))


def student_width(name: str, options: dict[str, Any], channels: tuple[int, int], macs: int) -> int:
    """The widest ``ngf`` (up to :data:`WIDEST`) whose generator costs at most ``macs``."""

    def cost(ngf: int) -> int:
        return generator_macs(name, {**options, "ngf": ngf}, channels)

    low, high = 1, WIDEST  # cost(low) is assumed to fit; find the last ngf that does
    while low < high:
        middle = (low + high + 1) // 2
        if cost(middle) <= macs:
            low = middle
        else:
            high = middle - 1
    return low


def match_taps(student: list[tuple[int, ...]], teacher: list[tuple[int, ...]]) -> list[int | None]:
    """For each student tap's resolution in ``student``, a teacher tap of that resolution
    (an index into ``teacher``, the resolution of every teacher tap), or None where there is
    none. The student taps of one resolution are spread in order over the teacher's, so a
    U-Net teacher is distilled on both its encoder and its decoder."""
    chosen: list[int | None] = []
    for i, size in enumerate(student):
        candidates = [j for j, t in enumerate(teacher) if t == size]
        peers = [k for k, other in enumerate(student) if other == size]
        # the middle of the peer's equal share of the candidates
        share = (peers.index(i) + 0.5) * len(candidates) / len(peers)
        chosen.append(candidates[int(share)] if candidates else None)
    return chosen


def _taps_by_size(sizes: list[tuple[int, ...]]) -> str:
    """``"(8, 8): 0-3, 9; (4, 4): 4-8"``: the taps of each resolution, in runs."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, size in enumerate(sizes):
        groups.setdefault(size, []).append(i)
    parts = []
    for size, taps in groups.items():
        runs = [[taps[0], taps[0]]]
        for tap in taps[1:]:
            if tap == runs[-1][1] + 1:
                runs[-1][1] = tap
            else:
                runs.append([tap, tap])
        listed = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
        parts.append(f"{size}: {listed}")
    return "; ".join(parts)


class Distill(DistillSpec, Trainer):
    def __init__(self, config: Config, teacher: Teacher) -> None:
        super().__init__(config)
        # A dataclass, not a module: the teacher stays out of the module tree, so it is in
        # no state dict, optimizer or weight average, and train() leaves it in eval mode.
        self.frozen_teacher = teacher
        channels = (config.data.input_channels, config.data.output_channels)
        self.spec = self.generator_spec(*channels)
        self.G = self.spec.build()
        self.D = self.build_discriminator(channels[1])
        self.adapters: nn.ModuleList | None = None  # sized from the first batch (initialize)
        self.main = Ranks.from_env().main

    @classmethod
    def prepare(cls, config: Config) -> Prepared:
        """The teacher, loaded and frozen, and a copy of ``config`` recording its SHA-256
        and (unless given) the student's ``ngf`` that ``loss.compression`` asks for and its
        taps to distill (its trunk's)."""
        config = copy.deepcopy(config)
        loss, g = config.loss, config.generator
        teacher = load_frozen_teacher(config)
        loss.teacher_sha256 = teacher.sha256
        channels = (config.data.input_channels, config.data.output_channels)
        narrowed = None  # the width loss.compression asked for, when under NARROWEST
        if "ngf" not in g.options and "widths" not in g.options:
            budget = int(teacher.macs / loss.compression)
            ngf = student_width(g.name, g.options, channels, budget)
            if ngf < NARROWEST:
                narrowed, ngf = ngf, NARROWEST
            g.options["ngf"] = ngf
        if loss.lambda_distill and loss.distill_layers is None:
            loss.distill_layers = GeneratorSpec(g.name, *channels, g.options).build().trunk_taps()
            if not loss.distill_layers:
                raise ValueError(
                    f"config key 'loss.distill_layers': the student {g.name} has no residual "
                    "trunk to take default taps from; list its tap points to distill, or set "
                    "loss.lambda_distill to 0"
                )
        if Ranks.from_env().main:
            student_macs = generator_macs(g.name, g.options, channels)
            if narrowed is not None:
                tqdm.write(
                    f"warning: loss.compression {loss.compression:g} would make the student "
                    f"ngf {narrowed}, too narrow to learn; it is ngf {NARROWEST}, "
                    f"{teacher.macs / student_macs:.1f}x fewer MACs than the teacher. For "
                    "more, distill a wider teacher or set generator.options.ngf yourself",
                    file=sys.stderr,
                )
            tqdm.write(
                f"teacher {teacher.path} ({teacher.spec.name}): {teacher.macs / 1e9:.2f} GMAC; "
                f"student {g.name} ngf {g.options.get('ngf')}: "
                f"{student_macs / 1e9:.3f} GMAC at {MAC_SIZE[0]}x{MAC_SIZE[1]} "
                f"({teacher.macs / student_macs:.1f}x fewer)",
                file=sys.stderr,
            )
        return Prepared(config, {"teacher": teacher})

    @property
    def teacher(self) -> nn.Module:
        """The frozen teacher generator."""
        return self.frozen_teacher.net

    @property
    def teacher_layers(self) -> list[int]:
        loss = self.config.loss
        return loss.distill_layers if loss.teacher_layers is None else loss.teacher_layers

    def initialize(self, batch: dict[str, Any]) -> None:
        if self.config.loss.lambda_distill == 0:
            return
        source, _ = self.inputs(batch)
        loss = self.config.loss
        self.G.eval()  # no batch-norm statistics from this look at the shapes
        try:
            with torch.no_grad():
                student = self.G(source, layers=loss.distill_layers)
                every = list(range(len(self.teacher.tap_points())))
                features = self.teacher(source, layers=every)
                if loss.teacher_layers is not None:  # its indices are checked here
                    self.teacher(source, layers=loss.teacher_layers)
        except ValueError as exc:
            raise ValueError(
                f"config key 'loss.distill_layers' or 'teacher_layers': {exc}"
            ) from None
        finally:
            self.G.train()
        sizes = [tuple(t.shape[2:]) for t in features]
        wanted = [tuple(s.shape[2:]) for s in student]
        if loss.teacher_layers is None:
            self._pair_taps(wanted, sizes)
        for size, tap, student_tap in zip(
            wanted, self.teacher_layers, loss.distill_layers, strict=True
        ):
            if sizes[tap] != size:
                raise ValueError(
                    f"config key 'loss.teacher_layers': the teacher's tap {tap} is "
                    f"{sizes[tap]}, the student's tap {student_tap} {size}; pick taps of the "
                    f"same resolution (the teacher's: {_taps_by_size(sizes)}), or leave "
                    "teacher_layers unset to pair them by resolution"
                )
        teacher = [features[i] for i in self.teacher_layers]
        self.adapters = nn.ModuleList(
            nn.Conv2d(s.shape[1], t.shape[1], 1) for s, t in zip(student, teacher, strict=True)
        )
        g = self.config.generator
        GENERATORS.finish_like(self.adapters, g.name, g.options)  # the generator's init

    def _pair_taps(self, student: list[tuple[int, ...]], teacher: list[tuple[int, ...]]) -> None:
        """Set ``loss.teacher_layers`` (config.yaml records it, so a resume pairs the same
        taps): the student's own indices where the teacher's resolutions match them, as
        between (mobile) ResNets, else teacher taps of each student tap's resolution."""
        loss = self.config.loss
        taps = zip(loss.distill_layers, student, strict=True)
        if all(-len(teacher) <= i < len(teacher) and teacher[i] == s for i, s in taps):
            loss.teacher_layers = list(loss.distill_layers)
            return
        chosen = match_taps(student, teacher)
        if None in chosen:
            tap, size = next(
                (t, s)
                for t, s, c in zip(loss.distill_layers, student, chosen, strict=True)
                if c is None
            )
            raise ValueError(
                f"config key 'loss.distill_layers': the student's tap {tap} is {size}, a "
                f"resolution no teacher tap has (the teacher's: {_taps_by_size(teacher)}); "
                "pick student taps at one of those, or set loss.lambda_distill to 0"
            )
        loss.teacher_layers = [c for c in chosen if c is not None]
        if self.main:
            pairs = ", ".join(
                f"{s}->{t}" for s, t in zip(loss.distill_layers, loss.teacher_layers, strict=True)
            )
            tqdm.write(
                f"distilling the student's taps to the teacher's of the same resolution: "
                f"{pairs} (loss.teacher_layers chooses others)",
                file=sys.stderr,
            )

    def inputs(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The source images and real target-domain images (the ground truth when paired)."""
        return batch["input"], batch["target"]

    def optimizers(self) -> dict[str, tuple[list[nn.Parameter], float]]:
        optim = self.config.optim
        nets = {"G": (parameters(self.G), optim.lr_g), "D": (parameters(self.D), optim.lr_d)}
        if self.adapters is not None:
            nets["adapters"] = (parameters(self.adapters), optim.lr_g)
        return nets

    @torch.no_grad()
    def teach(self, source: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The teacher's output and features (at the taps, when they are distilled)."""
        teacher = self.teacher.to(source.device)  # the engine moves only the module tree
        if self.adapters is None:
            return teacher(source), []
        return teacher(source, layers=self.teacher_layers, with_output=True)

    def train_step(
        self, batch: dict[str, Any], stepper: Stepper, update_g: bool = True
    ) -> dict[str, torch.Tensor]:
        source, real = self.inputs(batch)
        loss = self.config.loss
        taps = loss.distill_layers if self.adapters is not None else []
        with stepper.autocast(), torch.set_grad_enabled(update_g):
            fake, student = self.G(source, layers=taps, with_output=True)
        with stepper.autocast():
            loss_d, pred_real = self.discriminator_loss(self.D, real, fake)
        stepper.update("D", loss_d)
        if not update_g:
            return {"D": loss_d.detach()}

        with stepper.autocast():
            target, teacher = self.teach(source)
        with frozen(self.D), stepper.autocast():
            terms = {
                "G_GAN": self.adversarial_loss(self.D, fake, pred_real) * loss.lambda_gan,
                "G_teacher": F.l1_loss(fake.float(), target.float()) * loss.lambda_teacher,
            }
            if self.adapters is not None:
                distill = feature_distillation_loss(student, teacher, self.adapters)
                terms["G_distill"] = distill * loss.lambda_distill
            if self.data == "paired" and loss.lambda_target > 0:
                terms["G_L1"] = F.l1_loss(fake.float(), real.float()) * loss.lambda_target
        names = ("G", "adapters") if self.adapters is not None else "G"
        stepper.update(names, torch.stack(list(terms.values())).sum())
        return {"D": loss_d.detach(), **{k: v.detach() for k, v in terms.items()}}

    @torch.no_grad()
    def validate(self, batch: dict[str, Any]) -> Validation:
        source, real = self.inputs(batch)
        fake = self.G(source).float()
        teacher = self.teach(source)[0].float()
        images = {"input": source, "student": fake, "teacher": teacher}
        images["target" if self.data == "paired" else "real_B"] = real
        losses = {"teacher_L1": F.l1_loss(fake, teacher).item()}
        return Validation(images, fake, real, self.D(real), self.D(fake), losses)

    def validation_scores(self) -> metrics.PairedScores | None:
        return metrics.PairedScores()


class DistillUnpaired(DistillUnpairedSpec, Distill):
    """The same distillation on unpaired domains: no ground truth, D sees domain B."""

    def inputs(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        return batch["A"], batch["B"]

    def validation_scores(self) -> metrics.PairedScores | None:
        return None
