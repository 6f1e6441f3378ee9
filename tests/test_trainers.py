"""The trainer registry: trainers declare their data, loss section, defaults and optimizers,
and the engine trains a new one (three optimizers, a lazily built network) unchanged."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import yaml
from torch import nn
from training_helpers import make_engine, resumed_run, tiny

from translate.data.datasets import PairedFolder, UnpairedFolder
from translate.models.model_file import load_generators
from translate.training.base import Prepared, Stepper, parameters
from translate.training.config import Config
from translate.training.configure import from_dict
from translate.training.datasets import DATASETS
from translate.training.engine import Engine
from translate.training.models.pix2pix import Pix2Pix
from translate.training.specs import TRAINERS
from translate.training.specs.pix2pix import Pix2PixLoss

pytestmark = pytest.mark.usefixtures("one_thread")


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


def test_loss_keys_belong_to_the_chosen_model(data: Path) -> None:
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
    data: Path,
    tmp_path: Path,
    probe: str,
) -> None:
    sections = {"loss": {"lambda_probe": 2.0}, "train": {"batch_size": 2, "max_steps": 4}}
    with pytest.raises(ValueError, match=r"'loss.lambda_probe'"):
        from_dict(tiny("pix2pix", data, **sections))
    full = make_engine(tiny(probe, data, **sections), tmp_path / "full")
    assert set(full.stepper.optimizers) == {"G", "D", "F"}
    assert full.model.F.in_channels == 4  # the generator's first conv output (ngf 4)
    before = {k: v.clone() for k, v in full.model.F.state_dict().items()}
    full.fit()
    assert any(not torch.equal(before[k], v) for k, v in full.model.F.state_dict().items())
    assert full.config.loss.lambda_probe == 2.0

    resumed_run(tiny(probe, data, **sections), tmp_path / "resume", half=2)


def test_plateau_metric_is_the_epochs_generator_loss_with_default_logging(
    data: Path,
    tmp_path: Path,
) -> None:
    """log.every 100 never logs within these 5 steps; the plateau scheduler must still see
    the epoch's mean generator loss (the sum of each G term's mean over the epoch)."""
    config = tiny("pix2pix", data, schedule={"policy": "plateau"}, train={"max_steps": 5})
    config["log"] = {"tensorboard": False}
    t = make_engine(config, tmp_path)
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


class FlatPlateau(Pix2Pix):
    """Pix2Pix whose plateau policy watches the L1 term alone."""

    def plateau_metric(self, losses: dict[str, float]) -> float:
        return losses["G_L1"]


class UnreportedBest(Pix2Pix):
    best_metric = "val_FID"


def tiny_pix2pix(model: str, root: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """``tiny`` for a trainer derived from Pix2Pix: its U-Net generator."""
    return {**tiny(model, root, **sections), "generator": tiny("pix2pix", root)["generator"]}


@pytest.fixture
def registered() -> Iterator[Any]:
    names: list[str] = []

    def register(name: str, cls: type) -> str:
        TRAINERS.register(name)(cls)
        names.append(name)
        return name

    yield register
    for name in names:
        del TRAINERS._builders[name]


def test_the_plateau_policy_watches_the_metric_the_trainer_declares(
    data: Path,
    tmp_path: Path,
    registered: Any,
) -> None:
    name = registered("flat_plateau", FlatPlateau)
    config = tiny_pix2pix(name, data, schedule={"policy": "plateau"}, train={"max_steps": 5})
    t = make_engine(config, tmp_path)
    seen: list[float] = []
    step = t.model.train_step

    def recording(*args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        losses = step(*args, **kwargs)
        seen.append(losses["G_L1"].item())
        return losses

    t.model.train_step = recording  # type: ignore[method-assign]
    t.fit()  # batch 2 of 8 images: 4 steps are one epoch, the 5th starts the next
    assert t.epoch == 1 and len(seen) == 5
    assert t.schedulers["G"].best == pytest.approx(sum(seen[:4]) / 4, rel=1e-5)


@pytest.mark.parametrize(
    ("model", "metric"), [("cyclegan", "val_cycle_L1"), ("cut", "val_NCE"), ("pix2pix", "val_L1")]
)
def test_each_trainer_picks_generator_best_by_its_declared_metric(
    data: Path,
    tmp_path: Path,
    model: str,
    metric: str,
) -> None:
    """Unpaired runs have no targets to score, yet keep a best generator: CycleGAN by its
    unweighted cycle L1, CUT by its unweighted PatchNCE loss."""
    sections: dict[str, Any] = {"train": {"max_steps": 2}, "log": {"eval_every": 1}}
    if model == "cut":
        sections["loss"] = {"nce_layers": [0, 2], "num_patches": 16, "mlp_units": 8}
    t = make_engine(tiny(model, data, **sections), tmp_path)
    assert t.model.best_metric == metric
    t.fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    scored = [r for r in records if metric in r]
    assert len(scored) == 2 and all(r[metric] >= 0 for r in scored)
    best = min(scored, key=lambda r: r[metric])
    written = load_generators(tmp_path / "generator_best.safetensors").training["best_val"]
    assert written[metric] == best[metric] and written["step"] == best["step"]


def test_a_best_metric_validation_does_not_report_is_one_line_naming_it(
    data: Path,
    tmp_path: Path,
    registered: Any,
) -> None:
    name = registered("unreported_best", UnreportedBest)
    config = tiny_pix2pix(name, data, train={"max_steps": 1}, log={"eval_every": 1})
    with pytest.raises(ValueError, match=r"^trainer 'unreported_best': its best_metric 'val_FID'"):
        make_engine(config, tmp_path).fit()


def test_the_engine_builds_its_datasets_by_the_trainers_data_kind(
    data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The registry, not a branch in the engine, decides which dataset a data kind reads."""
    built: list[tuple[str, bool]] = []
    paired = DATASETS.get("paired")

    def recording(d: Any, split: str, train: bool, size: Any, part: Any) -> Any:
        built.append((split, train))
        return paired(d, split, train, size, part)

    monkeypatch.setitem(DATASETS._builders, "paired", (recording, {}))
    t = make_engine(tiny("pix2pix", data), tmp_path)
    assert built == [("train", True), ("val", False)]
    assert isinstance(t.train_set, PairedFolder) and "input" in t.evaluator.val_set[0]
    assert isinstance(make_engine(tiny("cyclegan", data), tmp_path / "u").train_set, UnpairedFolder)


class Staged(Pix2Pix):
    """Pix2Pix with a stage: it fills in ``loss.lambda_l1`` where it was left at its
    default, and hands over a network that the trainer uses but does not train."""

    stages: ClassVar[list[tuple[float, Prepared]]] = []  # (the lambda_l1 given, result)

    @classmethod
    def prepare(cls, config: Config) -> Prepared:
        resolved = copy.deepcopy(config)
        if config.loss.lambda_l1 == Pix2PixLoss.lambda_l1:
            resolved.loss.lambda_l1 = 7.0
        prepared = Prepared(resolved, {"helper": nn.Conv2d(3, 3, 1)})
        cls.stages.append((config.loss.lambda_l1, prepared))
        return prepared

    def __init__(self, config: Config, helper: nn.Module) -> None:
        super().__init__(config)
        self.helpers = [helper]  # a list, not a module: outside the module tree


def test_a_trainers_stage_runs_once_and_the_trainer_is_built_from_it(
    data: Path,
    tmp_path: Path,
    registered: Any,
) -> None:
    """The engine calls a declared stage once and builds the trainer from its config and
    inputs; config.yaml records the resolved values, which a later stage takes as given."""
    name = registered("staged", Staged)
    Staged.stages.clear()
    t = make_engine(tiny_pix2pix(name, data), tmp_path / "run")
    ((given, prepared),) = Staged.stages
    assert given == Pix2PixLoss.lambda_l1 and t.config.loss.lambda_l1 == 7.0
    assert t.config is prepared.config and t.model.helpers == [prepared.inputs["helper"]]
    assert not any(k.startswith("helper") for k in t.model.state_dict())
    recorded = from_dict(yaml.safe_load((tmp_path / "run" / "config.yaml").read_text()))
    again = Engine(recorded, tmp_path / "again", progress=False)
    assert Staged.stages[-1][0] == 7.0 and again.config.loss.lambda_l1 == 7.0
