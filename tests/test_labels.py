"""Label-map inputs (``input_kind = "labels"``, pix2pixHD/SPADE style): class ids read as stored,
one-hot encoded to the model's ``in_channels``, padded and tiled without inventing labels."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from translate.conversion.convert import convert_folder
from translate.inference.translator import Translator
from translate.models.model_file import GeneratorSpec, load_generators, save_generators
from translate.networks import GENERATORS, Generator

TOY = "toy_labels_test_labels"
CLASSES = 5


@GENERATORS.register(TOY)
class ToyLabels(Generator):
    """Per pixel: 1x1 convolutions of the one-hot input (so tiles are exact); sides padded to
    a multiple of 4, so padding is exercised."""

    input_kind = "labels"
    size_multiple = 4

    def __init__(self, in_channels: int = CLASSES, out_channels: int = 3) -> None:
        super().__init__()
        # per pixel throughout; four layers, as every registered generator has tap points
        # enough for tests/test_networks.py
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 8, 1), nn.ReLU(), nn.Conv2d(8, out_channels, 1), nn.Tanh()
        )

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    spec = GeneratorSpec.declared(TOY, CLASSES, 3, {})
    net = spec.build()
    with torch.no_grad():
        net.body[0].weight.mul_(4)  # outputs spread over the grey levels
    path = tmp_path_factory.mktemp("labels") / "labels.safetensors"
    save_generators(path, {"AtoB": (spec, net)})
    return path


def _expected(model, ids: np.ndarray) -> np.ndarray:
    """What the toy computes from the one-hot ids, as uint8 HWC."""
    net = load_generators(model).generators["AtoB"]
    one_hot = F.one_hot(torch.from_numpy(ids.astype(np.int64)), CLASSES).permute(2, 0, 1)
    with torch.no_grad():
        y = net(one_hot[None].float())[0]
    return (y.add(1).div(2).clamp(0, 1) * 255 + 0.5).floor().byte().permute(1, 2, 0).numpy()


def _palette_image(ids: np.ndarray) -> Image.Image:
    """A palette PNG whose colours are not its ids: only the indices are class ids."""
    img = Image.fromarray(ids.astype(np.uint8), "P")
    img.putpalette([value for i in range(256) for value in (255 - i, 7 * i % 256, 99)])
    return img


def test_a_folder_of_label_maps_converts_to_what_the_toy_computes_from_one_hot(model, tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "labels"
    src.mkdir()
    gray, palette = rng.integers(0, CLASSES, (10, 13)), rng.integers(0, CLASSES, (9, 7))
    Image.fromarray(gray.astype(np.uint8), "L").save(src / "gray.png")
    _palette_image(palette).save(src / "palette.png")
    Image.fromarray(np.full((4, 4), 7, np.uint8), "L").save(src / "bad.png")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(src / "rgb.png")
    translator = Translator.load(model, device="cpu", precision="fp32")
    summary = convert_folder(src, tmp_path / "out", translator, format="png")
    assert summary.converted == 2
    for name, ids in (("gray.png", gray), ("palette.png", palette)):
        with Image.open(tmp_path / "out" / name) as out:
            assert np.array_equal(np.asarray(out), _expected(model, ids))
    reasons = {path.name: reason for path, reason in summary.failed}
    assert reasons["bad.png"].startswith("class id 7 is not below the model's 5 classes")
    assert "(PNG mode L, P or I;16), this image is RGB" in reasons["rgb.png"]
    assert all("\n" not in reason for reason in reasons.values())


def test_a_tiled_label_map_and_a_fixed_size_never_blend_labels(model):
    ids = np.random.default_rng(1).integers(0, CLASSES, (37, 45)).astype(np.uint8)
    tiled = Translator.load(model, device="cpu", precision="fp32", tile=16, overlap=4)
    out = tiled(ids)
    assert out.shape == (37, 45, 3)
    # Blending happens in the output: at most a rounding apart from the untiled translation.
    assert np.abs(out.astype(int) - _expected(model, ids).astype(int)).max() <= 1
    # A fixed size resizes the one-hot input by nearest: the model sees only whole labels.
    sized = Translator.load(model, device="cpu", precision="fp32", size=10)
    seen = []
    sized.generator.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    assert sized(Image.fromarray(ids)).size == (45, 37)
    (x,) = seen
    assert x.shape == (1, CLASSES, 12, 12)  # 10 padded to the multiple of 4
    assert set(x.unique().tolist()) == {0.0, 1.0} and (x.sum(dim=1) == 1).all()


def test_the_translator_refuses_ids_beyond_the_classes_and_non_integer_maps(model):
    translator = Translator.load(model, device="cpu", precision="fp32")
    with pytest.raises(ValueError, match="class id 9 is not one of the model's 5 classes"):
        translator(np.full((4, 4), 9, np.uint8))
    with pytest.raises(ValueError, match="takes a label map: one channel of integer class ids"):
        translator(torch.zeros(1, 4, 4))
