"""Generators declare their geometry (output scale, input kind): the model file stores it and
inference (padding, tiles, batches, the memory budget) reads it instead of assuming 1x."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from translate.data.images import read_image
from translate.inference.memory import MemoryBudget
from translate.inference.translator import Translator
from translate.model_file import GeneratorSpec, Preprocessing, load_generators, save_generators
from translate.networks import GENERATORS
from translate.training.config import from_dict, validate

TOY = "toy_upscale2_test_geometry"


@GENERATORS.register(TOY)
class ToyUpscale2(nn.Module):
    """Per pixel: a 1x1 convolution, then each pixel repeated 2x2 (so tiles are exact)."""

    scale = 2
    size_multiple = 1

    def __init__(self, in_channels: int = 4, out_channels: int = 3, ngf: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, ngf, 1), nn.Tanh(), nn.Conv2d(ngf, out_channels, 1), nn.Tanh()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(self.body(x), scale_factor=self.scale, mode="nearest")


@pytest.fixture(scope="module")
def toy_file(tmp_path_factory):
    torch.manual_seed(0)
    spec = GeneratorSpec.declared(TOY, 4, 3, {})
    path = tmp_path_factory.mktemp("toy") / "toy.safetensors"
    save_generators(path, {"AtoB": (spec, spec.build())})
    return path


def test_the_spec_reads_the_declared_scale_and_the_file_keeps_it(toy_file):
    assert GeneratorSpec.declared(TOY, 4, 3, {}).scale == 2
    assert GeneratorSpec.declared("resnet_6blocks", 3, 3, {"ngf": 4}).scale == 1
    with safe_open(str(toy_file), "pt") as f:
        stored = json.loads(f.metadata()["generators"])["AtoB"]
    assert (stored["scale"], stored["input_kind"], stored["in_channels"]) == (2, "image", 4)
    assert load_generators(toy_file).specs["AtoB"].scale == 2


def _rewrite(path, out, edit):
    with safe_open(str(path), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    generators = json.loads(meta["generators"])
    edit(generators["AtoB"])
    save_file(tensors, str(out), {**meta, "generators": json.dumps(generators)})
    return out


def test_files_without_a_geometry_load_as_1x(tmp_path):
    spec = GeneratorSpec("resnet_6blocks", 3, 3, {"ngf": 4, "n_blocks": 1})
    path = tmp_path / "m.safetensors"
    save_generators(path, {"AtoB": (spec, spec.build())})
    old = _rewrite(
        path, tmp_path / "old.safetensors", lambda g: [g.pop("scale"), g.pop("input_kind")]
    )
    loaded = load_generators(old).specs["AtoB"]
    assert (loaded.scale, loaded.input_kind) == (1, "image")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda g: g.update(scale=0), "generators.AtoB.scale: expected a positive integer"),
        (lambda g: g.update(scale=True), "generators.AtoB.scale: expected a positive integer"),
        (lambda g: g.update(input_kind="video"), "generators.AtoB.input_kind: expected image or"),
        (lambda g: g.update(scale=3), "scale: the file says 3, " + TOY + " declares 2"),
    ],
)
def test_a_bad_geometry_is_refused_naming_its_key(toy_file, tmp_path, edit, message):
    bad = _rewrite(toy_file, tmp_path / "bad.safetensors", edit)
    with pytest.raises(ValueError, match=message) as info:
        load_generators(bad)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)


def test_outputs_are_scale_times_the_input_for_every_input_kind(toy_file):
    translator = Translator.load(toy_file, device="cpu", precision="fp32")
    rgba = np.random.default_rng(0).integers(0, 256, (10, 14, 4), dtype=np.uint8)
    assert translator(torch.from_numpy(rgba).permute(2, 0, 1)).shape == (3, 20, 28)
    assert translator(rgba).shape == (20, 28, 3)
    out = translator(Image.fromarray(rgba, "RGBA"))
    assert (out.size, out.mode) == ((28, 20), "RGB")  # alpha was the model's input, not kept
    batch = translator.translate_batch([rgba, rgba[:6], rgba])
    assert [a.shape for a in batch] == [(20, 28, 3), (12, 28, 3), (20, 28, 3)]
    with pytest.raises(ValueError, match="the model takes 4 channels, the image has 3"):
        translator(rgba[..., :3])


def test_a_fixed_size_run_returns_scale_times_the_image(toy_file):
    translator = Translator.load(toy_file, device="cpu", precision="fp32", size=8)
    assert translator(torch.rand(4, 10, 14)).shape == (3, 20, 28)


def test_tiles_are_cut_in_input_pixels_and_blended_in_output_pixels(toy_file):
    whole = Translator.load(toy_file, device="cpu", precision="fp32")
    tiled = Translator.load(toy_file, device="cpu", precision="fp32", tile=16, overlap=4)
    x = torch.rand(4, 37, 45)
    out = tiled(x)
    assert out.shape == (3, 74, 90)
    assert torch.allclose(out, whole(x), atol=1e-5)  # a per-pixel net: no seam anywhere


def test_the_memory_budget_counts_the_outputs_scale_squared_pixels(toy_file):
    toy = Translator.load(toy_file, device="cpu", precision="fp32", tile=16)
    budget = MemoryBudget(toy, bytes_per_pixel=100.0, max_pixels=10**9)
    # The tiled image's whole-output buffers: 48 bytes per output pixel, 4 per input pixel.
    assert budget.needs(64, 64) == 16 * 16 * 100.0 + 64 * 64 * 48 * 4


def test_image_files_supply_alpha_as_a_channel_and_refuse_other_counts(tmp_path):
    rgba = np.random.default_rng(1).integers(0, 256, (6, 5, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    Image.fromarray(rgba[..., :3]).save(tmp_path / "rgb.png")
    assert np.array_equal(read_image(tmp_path / "a.png", channels=4), rgba)
    opaque = read_image(tmp_path / "rgb.png", channels=4)
    assert np.array_equal(opaque[..., :3], rgba[..., :3]) and (opaque[..., 3] == 255).all()
    assert read_image(tmp_path / "a.png", channels=2).shape == (6, 5, 2)
    with pytest.raises(ValueError, match="channels must be 1, 2, 3, 4 .* got 5"):
        read_image(tmp_path / "a.png", channels=5)


def test_configs_and_files_take_channel_counts_beyond_1_and_3():
    config = from_dict({"data": {"input_channels": 4, "output_channels": 2}})
    validate(config)
    with pytest.raises(ValueError, match="'data.input_channels': 5 is not one of 1, 2, 3, 4"):
        validate(from_dict({"data": {"input_channels": 5}}))
    assert Preprocessing.from_dict({"input_channels": 4, "output_channels": 7}).input_channels == 4
