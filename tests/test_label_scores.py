"""The scores of label-to-image models: mIoU and pixel accuracy of a segmenter against the
input label maps (core.metrics), the segmenter trained once per data set and cached
(models.segmenter), the diversity under noise, and `translate evaluate` on a label model."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import save_file
from torch import nn
from training_helpers import make_engine, tiny

from translate.apps.evaluate import evaluate
from translate.core.metrics import LabelScores, confusion_matrix, segmentation_scores
from translate.data.transforms import Preprocess
from translate.evaluation.lpips import LPIPS
from translate.evaluation.scores import noise_diversity
from translate.models import loading, segmenter
from translate.models.model_file import GeneratorSpec, InputSpec, LoadedModel, save_generators
from translate.models.segmenter import SegmenterOptions, cache_path, load_or_train
from translate.training.base import Validation

CLASSES = 3
COLORS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)  # class -> its B colour
TINY = SegmenterOptions(steps=2, size=16, batch=2, width=4)
TINY_PREPROCESS = Preprocess(mode="none", flip=False)


def _scores(predicted: list[int], truth: list[int], classes: int = 4, ignore=None) -> dict:
    confusion = confusion_matrix(torch.tensor(predicted), torch.tensor(truth), classes, ignore)
    return segmentation_scores(confusion)


def test_miou_and_pixel_accuracy_on_hand_examples() -> None:
    perfect = _scores([0, 1, 2, 2], [0, 1, 2, 2])
    assert perfect == {"miou": 1.0, "pixel_accuracy": 1.0}
    # class 0: 2 right of 4 guessed (IoU 2/4), class 1: none of its 2 found (IoU 0)
    half = _scores([0, 0, 0, 0], [0, 0, 1, 1])
    assert half["miou"] == pytest.approx(0.25) and half["pixel_accuracy"] == 0.5
    # the ignore id (in range or beyond the classes) is not counted, whatever is predicted
    for ignore in (3, 255):
        ignored = _scores([0, 1, 2, 2], [0, 1, ignore, ignore], ignore=ignore)
        assert ignored == {"miou": 1.0, "pixel_accuracy": 1.0}
    # classes 2 and 3 are absent from the truth: out of the mean even where predicted, but
    # the pixel taken from class 1 lowers its IoU (1 of 2)
    absent = _scores([0, 1, 3], [0, 1, 1])
    assert absent["miou"] == pytest.approx((1 + 0.5) / 2)
    assert absent["pixel_accuracy"] == pytest.approx(2 / 3)
    nothing = _scores([0, 1], [255, 255], ignore=255)
    assert math.isnan(nothing["miou"]) and math.isnan(nothing["pixel_accuracy"])


class ByColour(nn.Module):
    """A perfect segmenter of COLORS images: the logits are the RGB channels."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images[:, :CLASSES] * 10


def _colour_images(ids: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(COLORS[ids.numpy()]).permute(0, 3, 1, 2).float() / 127.5 - 1


def test_label_scores_score_outputs_and_real_images_against_the_labels() -> None:
    ids = torch.tensor([[[0, 1], [2, 2]], [[1, 1], [0, 255]]])
    real = _colour_images(ids.clamp(max=2))
    wrong = _colour_images(torch.zeros_like(ids))  # everything segmented as class 0
    scores = LabelScores(ByColour(), CLASSES, ignore=255, real=True)
    scores.add(wrong, real, ids)
    found = scores.result()
    assert found["miou_real"] == 1.0 and found["pixel_accuracy_real"] == 1.0
    assert found["pixel_accuracy"] == pytest.approx(2 / 7)  # 7 counted pixels, 2 of class 0
    assert found["miou"] == pytest.approx((2 / 7 + 0 + 0) / 3)
    assert {"l1", "psnr", "ssim"} <= found.keys()
    with pytest.raises(ValueError, match="pass labels"):
        scores.add(wrong, real)


def _label_set(root: Path, count: int, split: str = "train", seed: int = 0, side: int = 16) -> None:
    """``count`` label maps of ``side`` px in 4 px blocks, and their images in the class
    colours."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        coarse = rng.integers(0, CLASSES, (side // 4, side // 4))
        ids = np.kron(coarse, np.ones((4, 4), np.int64)).astype(np.uint8)
        for folder in ("A", "B"):
            (root / split / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(ids, "L").save(root / split / "A" / f"m{i}.png")
        Image.fromarray(COLORS[ids]).save(root / split / "B" / f"m{i}.png")


def test_the_segmenter_is_trained_once_cached_and_retrained_when_a_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _label_set(tmp_path, 3)
    state = torch.random.get_rng_state()
    net = load_or_train(tmp_path, CLASSES, options=TINY, progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG left alone
    path = cache_path(tmp_path, CLASSES, options=TINY)
    assert path.is_file() and path.parent.name == ".translate"
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert net(torch.zeros(2, 3, 13, 11)).shape == (2, CLASSES, 13, 11)  # any size

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained again")

    with monkeypatch.context() as patch:
        patch.setattr(segmenter, "train", no_training)
        again = load_or_train(tmp_path, CLASSES, options=TINY, progress=False)
    for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # another option, or a changed file, is another segmenter
    assert cache_path(tmp_path, CLASSES, options=SegmenterOptions(steps=3)) != path
    image = tmp_path / "train" / "B" / "m0.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    os.utime(image, ns=(1, 1))
    changed = cache_path(tmp_path, CLASSES, options=TINY)
    assert changed != path
    load_or_train(tmp_path, CLASSES, options=TINY, progress=False)
    assert changed.is_file()


class NoiseGenerator(nn.Module):
    """A label model that takes noise (the shared contract): ``forward(x, z)``, z (N, 2)."""

    noise_dim = 2
    input_kind = "labels"

    def __init__(self, uses_noise: bool) -> None:
        super().__init__()
        self.uses_noise = uses_noise
        self.conv = nn.Conv2d(CLASSES, 3, 1)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if z is None:
            z = torch.randn(x.shape[0], self.noise_dim)
        out = self.conv(x)
        if self.uses_noise:
            out = out + z.sum(1).view(-1, 1, 1, 1)
        return torch.tanh(out)


def test_diversity_is_zero_without_use_of_the_noise_and_positive_with_it() -> None:
    maps = [F.one_hot(torch.randint(0, CLASSES, (8, 8)), CLASSES).permute(2, 0, 1).float()
            for _ in range(3)]  # fmt: skip
    assert noise_diversity(NoiseGenerator(False), maps, samples=3) == 0.0
    assert noise_diversity(NoiseGenerator(True), maps, samples=3) > 0.05
    with pytest.raises(ValueError, match="no noise_dim"):
        noise_diversity(nn.Conv2d(CLASSES, 3, 1), maps)


def _label_data(root: Path) -> None:
    """32 px: the size multiple of the smallest spade."""
    _label_set(root, 3, "train", seed=0, side=32)
    _label_set(root, 2, "val", seed=1, side=32)


def _run(args: list[str]) -> str:
    result = CliRunner().invoke(evaluate, args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_evaluate_prints_the_miou_of_a_label_model(tmp_path: Path) -> None:
    _label_data(tmp_path / "data")
    options = {"ngf": 2, "num_upsampling": 5, "hidden": 4}
    spec = GeneratorSpec.declared("spade", CLASSES, 3, options)
    preprocess = InputSpec(TINY_PREPROCESS, input_channels=CLASSES)
    save_generators(tmp_path / "g.safetensors", {"AtoB": (spec, spec.build().eval())}, preprocess)
    args = ["--model", str(tmp_path / "g.safetensors"), "--data", str(tmp_path / "data")]
    args += ["--segmenter-steps", "2", "--segmenter-size", "16", "--device", "cpu"]
    table = _run(args)
    assert "mIoU " in table and "mIoU (real images)" in table and "pixel accuracy" in table
    assert "diversity (noise)" not in table  # spade here takes no noise
    scores = json.loads(_run([*args, "--json"]))
    assert scores["images"] == 2 and 0 <= scores["miou"] <= 1 and 0 <= scores["miou_real"] <= 1
    # a labels file whose classes the model cannot take is named
    (tmp_path / "labels.yaml").write_text("data:\n  label_nc: 7\n")
    result = CliRunner().invoke(evaluate, [*args, "--labels", str(tmp_path / "labels.yaml")])
    assert result.exit_code == 2 and "declares 7 classes" in result.output
    # an image model takes no label options
    image_model = ["--model", "demo", "--data", str(tmp_path / "data"), "--segmenter-steps", "2"]
    result = CliRunner().invoke(evaluate, image_model)
    assert result.exit_code == 2 and "are for a label --model" in result.output
    # nor LPIPS diversity a model without noise, before any weights are read
    result = CliRunner().invoke(evaluate, [*args, "--lpips", str(tmp_path / "labels.yaml")])
    assert result.exit_code == 2 and "--lpips measures the diversity under noise" in result.output


def test_evaluate_prints_the_diversity_of_a_model_that_takes_noise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _label_data(tmp_path / "data")
    generator = NoiseGenerator(True).eval()
    spec = GeneratorSpec("noise", CLASSES, 3, input_kind="labels", size_multiple=1)
    model = LoadedModel({"AtoB": generator}, {"AtoB": spec}, InputSpec(TINY_PREPROCESS, CLASSES))
    monkeypatch.setattr(loading, "load_model", lambda source, device: model)
    args = ["--model", "noise", "--data", str(tmp_path / "data"), "--device", "cpu"]
    args += ["--segmenter-steps", "2", "--segmenter-size", "16", "--diversity-maps", "2"]
    result = CliRunner().invoke(evaluate, args)
    assert result.exit_code == 0, result.output
    assert "diversity (noise)" in result.stdout and "give --lpips" in result.stderr
    scores = json.loads(_run([*args, "--json"]))
    assert scores["diversity_noise"] > 0 and "diversity_lpips" not in scores
    # with LPIPS weights, the same outputs' LPIPS too, under its own key
    torch.manual_seed(0)
    lpips = LPIPS()
    with torch.no_grad():
        for lin in lpips.lins:
            lin.weight.abs_()  # non-negative, as the learnt ones are
    save_file(lpips.state_dict(), str(tmp_path / "lpips.safetensors"))
    args += ["--lpips", str(tmp_path / "lpips.safetensors")]
    result = CliRunner().invoke(evaluate, args)
    assert result.exit_code == 0, result.output
    assert "diversity (noise, LPIPS)" in result.stdout and "--lpips" not in result.stderr
    with_lpips = json.loads(_run([*args, "--json"]))
    assert with_lpips["diversity_noise"] == scores["diversity_noise"]
    assert with_lpips["diversity_lpips"] > 0


class Bright(nn.Module):
    """A segmenter of two classes: 1 where the first channel is above 0."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([-images[:, :1], images[:, :1]], 1)


def test_validation_scores_the_miou_of_a_trainer_that_returns_label_scores(
    data: Path, tmp_path: Path
) -> None:
    """The engine hands ``Validation.labels`` to the trainer's ``validation_scores()``: here
    a pix2pix whose validation labels are its targets' bright pixels, so the real images
    score a perfect ceiling."""
    engine = make_engine(tiny("pix2pix", data), tmp_path / "run")
    trainer, validate = engine.model, engine.model.validate

    def with_labels(batch: dict) -> Validation:
        result = validate(batch)
        result.labels = (batch["target"][:, 0] > 0).long()
        return result

    trainer.validate = with_labels
    trainer.validation_scores = lambda: LabelScores(Bright(), 2, real=True)
    values = engine.evaluator.run(step=0, epoch=0).values
    assert values["val_MIOU_REAL"] == 1.0 and values["val_PIXEL_ACCURACY_REAL"] == 1.0
    assert 0 <= values["val_MIOU"] <= 1 and "val_L1" in values
