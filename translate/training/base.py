"""What every trainer shares: its declarations, the update step it calls and the GAN losses."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from translate.core import metrics
from translate.core.runtime import Precision
from translate.data.gpu_augment import DiffAugment
from translate.models.model_file import GeneratorSpec
from translate.models.segmenter import SegmenterOptions, load_or_train
from translate.networks import build_discriminator
from translate.training.config import Config
from translate.training.distributed import GradientReducer
from translate.training.losses import Prediction, feature_matching_loss, objective_for
from translate.training.specs import TrainerSpec


class Stepper:
    """Backward passes and optimizer updates with the run's precision, clipping and ranks.

    Gradients are averaged across ranks by one
    :class:`~translate.training.distributed.GradientReducer` per optimizer, bucket by bucket
    while backward runs (``overlap=False``: one flat all-reduce after it), which keeps the
    models plain ``nn.Module``s however many times a step calls a network.
    """

    def __init__(
        self,
        optimizers: dict[str, Optimizer],
        device: torch.device,
        precision: Precision | None = None,
        grad_clip: float | None = None,
        world_size: int = 1,
        overlap: bool = True,
    ) -> None:
        self.precision = precision or Precision("fp32", device.type)
        self.optimizers, self.device = optimizers, device
        self.grad_clip, self.world_size = grad_clip, world_size
        self.reducers = {
            name: GradientReducer(
                [p for g in o.param_groups for p in g["params"]], world_size, overlap
            )
            for name, o in optimizers.items()
            if world_size > 1
        }
        # One scaler per optimizer; a joint update (several names) uses the first one's.
        self.scalers = {
            name: torch.amp.GradScaler(device.type, enabled=self.precision.grad_scaling)
            for name in optimizers
        }

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        return self.precision.autocast()

    def update(self, names: str | tuple[str, ...], loss: torch.Tensor) -> None:
        """One backward pass of ``loss``, then a step of the optimizer(s) ``names``.

        Several names share the pass (CUT's generator and its feature MLP) and the first
        one's grad scaler; clipping stays per optimizer.
        """
        names = (names,) if isinstance(names, str) else names
        optimizers = [self.optimizers[n] for n in names]
        scaler = self.scalers[names[0]]
        reducers = [self.reducers[n] for n in names if n in self.reducers]
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        for reducer in reducers:
            reducer.arm()
        scaler.scale(loss).backward()
        for reducer in reducers:
            reducer.wait()
        for optimizer in optimizers:
            params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            if self.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(params, self.grad_clip)
            scaler.step(optimizer)
        scaler.update()


@contextlib.contextmanager
def frozen(*nets: nn.Module) -> Iterator[None]:
    """No weight gradients for ``nets`` (the discriminators during a generator update)."""
    params = [p for net in nets for p in net.parameters()]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


@dataclass
class Validation:
    """What :meth:`Trainer.validate` makes of one batch of validation images."""

    images: dict[str, torch.Tensor]  # the sample grid's columns, in [-1, 1]
    fake: torch.Tensor  # the outputs: monitored, and scored against ``real`` on paired data
    real: torch.Tensor  # real images of the output domain (the targets on paired data)
    # D on ``real`` and on ``fake``, for the monitor's accuracies (None: no discriminator)
    d_real: Prediction | None
    d_fake: Prediction | None
    # trainer-specific batch means (``cycle_L1``), averaged over the images as ``val_<name>``
    losses: dict[str, float] = field(default_factory=dict)
    # a reference method's outputs for the same inputs (SR: bicubic upscaling), scored like
    # ``fake`` in a run's first evaluation: the baseline the model should beat
    baseline: torch.Tensor | None = None
    # a label model's input ids (NHW, the batch's ``labels``), which the trainer's
    # ``validation_scores()`` reads when it is a ``metrics.LabelScores`` (mIoU)
    labels: torch.Tensor | None = None


def label_scores(config: Config) -> metrics.PairedScores:
    """A label trainer's validation scores: :class:`metrics.PairedScores`, plus the mIoU and
    pixel accuracy of a segmenter on the outputs (:class:`metrics.LabelScores`, the real
    images' as the ceiling) on label data with ``data.segmenter_steps``; the segmenter is
    trained on the first call for these files and cached beside them."""
    d = config.data
    if not d.label_nc or not d.segmenter_steps or d.single_image is not None:
        return metrics.PairedScores()
    options = SegmenterOptions(steps=d.segmenter_steps)
    segmenter = load_or_train(d.root, d.label_nc, d.labels, options)
    return metrics.LabelScores(segmenter, d.label_nc, d.labels.ignore, real=True)


@dataclass(frozen=True)
class Prepared:
    """What a trainer's stage (:meth:`Trainer.prepare`) resolved before the trainer is built."""

    config: Config  # the run's config with the trainer's own values filled in
    # keyword arguments of the trainer's constructor: auxiliary networks (a frozen teacher)
    # that the trainer uses but the run does not train, checkpoint or average
    inputs: dict[str, Any] = field(default_factory=dict)


class Trainer(TrainerSpec, nn.Module):
    """A trainer: its networks plus ``train_step``, a subclass of its spec (the declarations
    of :class:`~translate.training.specs.TrainerSpec`, registered by name in ``TRAINERS``).
    The engine reads only those declarations and these methods:

    - :meth:`prepare`, the optional stage: trainer-specific config and auxiliary networks,
      resolved once before the trainer is built (``cls(prepared.config, **prepared.inputs)``);
    - :meth:`initialize`, :meth:`optimizers`, :meth:`generators`, :meth:`train_step`,
      :meth:`validate`, :meth:`validation_scores`, :meth:`plateau_metric` and the extra
      state.
    """

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.gan_loss = objective_for(config.loss)
        policy = config.discriminator.diff_augment
        self.augment = DiffAugment(policy) if policy else None

    def generator_spec(self, in_channels: int, out_channels: int) -> GeneratorSpec:
        g = self.config.generator
        return GeneratorSpec.declared(g.name, in_channels, out_channels, dict(g.options))

    def build_discriminator(self, in_channels: int) -> nn.Module:
        d = self.config.discriminator
        return build_discriminator(d.name, in_channels, **d.options)

    @classmethod
    def prepare(cls, config: Config) -> Prepared:
        """Resolve what this trainer needs before it is built, and before any data is read:
        values left for it to fill in (into a copy of ``config``, which ``config.yaml``
        records, so a resume builds the same networks) and auxiliary networks loaded from
        files, passed to ``__init__`` as keyword arguments. Errors are one-line
        ``ValueError``s naming the config key or file. The default has nothing to resolve."""
        return Prepared(config)

    def initialize(self, batch: dict[str, Any]) -> None:
        """Build the networks whose sizes come from the data, from one batch on the CPU;
        called once before the optimizers are made (and before a resume loads weights)."""

    def optimizers(self) -> dict[str, tuple[list[nn.Parameter], float]]:
        """``{name: (parameters, learning rate)}``: one Adam optimizer (and scheduler) per
        name; ``train_step`` updates them by name through the :class:`Stepper`. The default:
        ``self.G`` at ``optim.lr_g`` and ``self.D`` at ``optim.lr_d``."""
        optim = self.config.optim
        return {"G": (parameters(self.G), optim.lr_g), "D": (parameters(self.D), optim.lr_d)}

    def generators(self) -> dict[str, tuple[GeneratorSpec, nn.Module]]:
        """``{direction: (spec, module)}`` for the generator file; the default: ``self.G``
        (built from ``self.spec``) as ``AtoB``."""
        return {"AtoB": (self.spec, self.G)}

    def train_step(
        self, batch: dict[str, Any], stepper: Stepper, update_g: bool = True
    ) -> dict[str, torch.Tensor]:
        """One optimization step; returns the detached losses."""
        raise NotImplementedError

    def validate(self, batch: dict[str, Any]) -> Validation:
        """Sample columns for the grid, and what the monitor and metrics need."""
        raise NotImplementedError

    def plateau_metric(self, losses: dict[str, float]) -> float:
        """What the plateau policy watches, from the epoch's mean training losses: the total
        generator loss (the ``G_*`` terms summed)."""
        return sum(v for k, v in losses.items() if k.startswith("G"))

    def validation_scores(self) -> metrics.PairedScores | None:
        """Scores of ``validate``'s ``fake`` against ``real`` over the validation set (those
        of paired data; a label model's ``metrics.LabelScores`` also reads
        ``Validation.labels``), or None when outputs have no ground truth."""
        return None

    def extra_state(self) -> dict[str, Any]:
        """Training state outside the state dict (CycleGAN's image pools)."""
        return {}

    def load_extra_state(self, state: dict[str, Any], device: torch.device) -> None:
        """Restore what :meth:`extra_state` returned."""

    def discriminator_loss(
        self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> tuple[torch.Tensor, Prediction]:
        """Real vs (detached) fake, halved as in the reference, plus the objective's penalty.

        Returns the loss and D's prediction on the real input (for feature matching).
        """
        fake = fake.detach()
        if self.augment is not None:
            real, fake = self.augment(real, fake)
        pred_real = D(real)
        loss = 0.5 * (self.gan_loss(pred_real, True) + self.gan_loss(D(fake), False))
        penalty = self.gan_loss.penalty(D, real, fake)
        if penalty is not None:
            loss = loss + penalty
        return loss, pred_real

    def real_prediction(self, D: nn.Module, real: torch.Tensor) -> Prediction | None:
        """D on real images for feature matching, when it is on and no D pass supplies it."""
        if self.config.loss.feature_matching <= 0:
            return None
        with torch.no_grad():
            return D(self.augment(real) if self.augment is not None else real)

    def adversarial_loss(
        self, D: nn.Module, fake: torch.Tensor, pred_real: Prediction | None = None
    ) -> torch.Tensor:
        """The generator's GAN loss on ``fake``, plus feature matching against ``pred_real``."""
        if self.augment is not None:
            fake = self.augment(fake)
        pred_fake = D(fake)
        loss = self.gan_loss(pred_fake, True, for_discriminator=False)
        weight = self.config.loss.feature_matching
        if weight > 0 and pred_real is not None:
            loss = loss + weight * feature_matching_loss(pred_real, pred_fake)
        return loss


def parameters(*nets: nn.Module) -> list[nn.Parameter]:
    return [p for net in nets for p in net.parameters()]
