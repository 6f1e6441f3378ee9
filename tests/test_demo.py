"""The bundled demo model: small, loadable by name, and better than trivial guesses on the
sample tiles (val tiles it never saw in training)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from translate import Translator
from translate.cli import main
from translate.data.images import list_images, read_image
from translate.models.loading import resolve_model_path
from translate.models.model_file import read_metadata
from translate.training.configure import load_config

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "datasets" / "samples"
TARGETS = Path(__file__).parent / "data" / "demo_targets"


def l1(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference on the [-1, 1] scale the metrics use."""
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean() / 127.5)


def test_demo_file_is_small_fp16_and_describes_its_training() -> None:
    path = resolve_model_path("demo")
    assert path.stat().st_size <= 5_000_000
    weights = load_file(str(path))
    assert {t.dtype for t in weights.values() if t.is_floating_point()} == {torch.float16}
    meta = read_metadata(path)
    config = load_config(ROOT / "configs" / "demo.yaml")  # the file says what trained it
    assert meta.specs["AtoB"].name == config.generator.name
    assert meta.specs["AtoB"].options == config.generator.options
    assert meta.training["model"] == "pix2pix"
    assert {"val_L1", "val_PSNR", "val_SSIM"} <= set(meta.training["best_val"])
    assert meta.preprocess.input_channels == meta.preprocess.output_channels == 3


@pytest.fixture(scope="module")
def translated() -> list[tuple[Path, np.ndarray, np.ndarray]]:
    """(sample path, input, demo output) for every sample tile."""
    samples = list_images(SAMPLES)
    translator = Translator.load("demo", device="cpu", precision="fp32")
    inputs = [read_image(p) for p in samples]
    return list(zip(samples, inputs, translator.translate_batch(inputs), strict=True))


def test_demo_beats_grayscale_and_flat_colour_on_every_sample(translated) -> None:
    assert len(translated) >= 10
    targets = [read_image(TARGETS / path.name) for path, _, _ in translated]
    flat = np.mean([t.reshape(-1, 3).mean(0) for t in targets], axis=0)
    model_l1, flat_l1 = [], []
    for (path, image, output), target in zip(translated, targets, strict=True):
        assert output.shape == image.shape == target.shape, path.name
        assert output.dtype == np.uint8
        gray = np.repeat(image.mean(axis=2, keepdims=True), 3, axis=2)
        model_l1.append(l1(output, target))
        flat_l1.append(l1(np.broadcast_to(flat, target.shape), target))
        assert model_l1[-1] < l1(gray, target), path.name
    # A flat image of the targets' mean colour is a fair guess for ocean tiles; over the
    # whole set the model must do clearly better.
    assert np.mean(model_l1) < 0.6 * np.mean(flat_l1)


def test_quickstart_convert_demo_writes_one_output_per_sample(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["convert", "demo", str(SAMPLES), str(out)])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in list_images(out))
    assert written == sorted(p.name for p in list_images(SAMPLES))
    assert read_image(out / written[0]).shape == read_image(SAMPLES / written[0]).shape


def test_demo_figure_has_a_row_per_kind_and_a_column_per_tile() -> None:
    spec = importlib.util.spec_from_file_location("demo_figure", ROOT / "tools" / "demo_figure.py")
    demo_figure = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo_figure)
    samples = list_images(SAMPLES)[:3]
    translator = Translator.load("demo", device="cpu", precision="fp32")
    grid = demo_figure.figure(translator, samples, TARGETS, gap=4, label_width=96)
    side = read_image(samples[0]).shape[0]
    assert grid.shape == (3 * (side + 4), 96 + 3 * (side + 4), 3)
    # The middle row holds the model's outputs, not a copy of the inputs or the targets.
    first_output = grid[side + 4 : 2 * side + 4, 96 : 96 + side]
    assert not np.array_equal(first_output, read_image(samples[0]))
    assert not np.array_equal(first_output, read_image(TARGETS / samples[0].name))
