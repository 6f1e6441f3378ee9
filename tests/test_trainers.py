"""The trainer registry: trainers declare their data, loss section, defaults and optimizers,
and the engine trains a new one (three optimizers, a lazily built network) unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from test_training import _one_thread, data, resumed_run, tiny, trainer  # noqa: F401
from torch import nn

from translate.training.base import Stepper, parameters
from translate.training.configure import from_dict
from translate.training.models import TRAINERS
from translate.training.models.pix2pix import Pix2Pix, Pix2PixLoss


@dataclass
class ProbeLoss(Pix2PixLoss):
    lambda_probe: float = 1.0


class Probe(Pix2Pix):
    """Pix2Pix plus a 1x1 convolution on a generator feature map, sized from the first
    batch and updated by its own optimizer in the generator's backward pass."""

    Loss = ProbeLoss

    def initialize(self, batch: dict[str, Any]) -> None:
        (feature,) = self.G(batch["input"], layers=[1])
        self.F = nn.Conv2d(feature.shape[1], 1, 1)

    def optimizers(self) -> dict[str, tuple[list[nn.Parameter], float]]:
        return {**super().optimizers(), "F": (parameters(self.F), self.config.optim.lr_g)}

    def train_step(
        self, batch: dict[str, Any], stepper: Stepper, update_g: bool = True
    ) -> dict[str, torch.Tensor]:
        losses = super().train_step(batch, stepper, update_g)
        with stepper.autocast():
            (feature,) = self.G(batch["input"], layers=[1])
            probe = self.F(feature).square().mean() * self.config.loss.lambda_probe
        stepper.update(("G", "F"), probe)
        return {**losses, "G_probe": probe.detach()}


@pytest.fixture
def probe() -> Iterator[str]:
    TRAINERS.register("probe")(Probe)
    yield "probe"
    del TRAINERS._builders["probe"]


def test_loss_keys_belong_to_the_chosen_model(data: Path) -> None:  # noqa: F811
    with pytest.raises(ValueError, match=r"unknown config key 'loss.lambda_l1'.*lambda_identity"):
        from_dict(tiny("cyclegan", data, loss={"lambda_l1": 50.0}))
    with pytest.raises(ValueError, match=r"'loss.lambda_a'"):
        from_dict(tiny("pix2pix", data, loss={"lambda_a": 5.0}))
    with pytest.raises(ValueError, match=r"config key 'model': unknown model 'cyclegn'.*pix2pix"):
        from_dict(tiny("cyclegn", data))
    config = from_dict(tiny("cyclegan", data))
    assert config.loss.gan_mode == "lsgan" and not hasattr(config.loss, "lambda_l1")
    assert from_dict(tiny("pix2pix", data)).loss.gan_mode == "vanilla"


def test_a_registered_trainer_with_a_lazy_network_and_three_optimizers_trains_and_resumes(
    data: Path,  # noqa: F811
    tmp_path: Path,
    probe: str,
) -> None:
    sections = {"loss": {"lambda_probe": 2.0}, "train": {"batch_size": 2, "max_steps": 4}}
    with pytest.raises(ValueError, match=r"'loss.lambda_probe'"):
        from_dict(tiny("pix2pix", data, **sections))
    full = trainer(tiny(probe, data, **sections), tmp_path / "full")
    assert set(full.stepper.optimizers) == {"G", "D", "F"}
    assert full.model.F.in_channels == 4  # the generator's first conv output (ngf 4)
    before = {k: v.clone() for k, v in full.model.F.state_dict().items()}
    full.fit()
    assert any(not torch.equal(before[k], v) for k, v in full.model.F.state_dict().items())
    assert full.config.loss.lambda_probe == 2.0

    resumed_run(tiny(probe, data, **sections), tmp_path / "resume", half=2)


def test_plateau_metric_is_the_epochs_generator_loss_with_default_logging(
    data: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """log.every 100 never logs within these 5 steps; the plateau scheduler must still see
    the epoch's mean generator loss (the sum of each G term's mean over the epoch)."""
    config = tiny("pix2pix", data, schedule={"policy": "plateau"}, train={"max_steps": 5})
    config["log"] = {"tensorboard": False}
    t = trainer(config, tmp_path)
    assert t.config.log.every == 100
    seen: list[dict[str, float]] = []
    step = t.model.train_step

    def recording(*args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        losses = step(*args, **kwargs)
        seen.append({k: v.item() for k, v in losses.items()})
        return losses

    t.model.train_step = recording  # type: ignore[method-assign]
    t.fit()  # batch 2 of 8 images: 4 steps are one epoch, the 5th starts the next
    assert t.epoch == 1 and len(seen) == 5
    expected = sum(sum(s[k] for s in seen[:4]) / 4 for k in ("G_GAN", "G_L1"))
    assert t.schedulers["G"].best == pytest.approx(expected, rel=1e-5)
