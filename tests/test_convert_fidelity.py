"""What a file holds besides its first frame's pixels: more frames, an ICC profile."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image, ImageCms

from translate.cli import main
from translate.conversion.convert import convert_folder
from translate.data.images import read_image
from translate.inference.translator import Translator
from translate.models.model_file import load_generators


@pytest.fixture(scope="module")
def model(tiny_generator_file):
    return tiny_generator_file


def _frames(n, size=16):
    rng = np.random.default_rng(n)
    return [
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)
    ]


def test_multi_frame_inputs_give_frame_one_and_are_listed_gif_included(model, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name, n, kwargs in [
        ("pages.tif", 3, {}),
        ("anim.png", 2, {}),  # APNG
        ("anim.webp", 2, {"lossless": True}),
        ("anim.gif", 2, {}),
        ("still.gif", 1, {}),
    ]:
        frames = _frames(n)
        frames[0].save(src / name, save_all=n > 1, append_images=frames[1:], **kwargs)
    translator = Translator.load(model, device="cpu")
    summary = convert_folder(src, tmp_path / "out", translator, progress=False)
    assert (summary.converted, summary.failed) == (5, [])
    assert sorted((p.name, n) for p, n in summary.first_frame_only) == [
        ("anim.gif", 2),
        ("anim.png", 2),
        ("anim.webp", 2),
        ("pages.tif", 3),
    ]
    for name in ("pages.tif", "anim.png"):
        expected = translator(np.asarray(_frames(3 if name == "pages.tif" else 2)[0]))
        assert np.array_equal(read_image(tmp_path / "out" / name), expected), name
    for name in ("anim.webp", "anim.gif"):  # the outputs are lossy: check what is read
        first = np.asarray(Image.open(src / name).convert("RGB"))
        assert np.array_equal(read_image(src / name), first), name
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert Image.open(tmp_path / "out" / "still.gif").format == "GIF"

    result = CliRunner().invoke(
        main, ["convert", str(model), str(src), str(tmp_path / "cli"), "--no-progress"]
    )
    assert result.exit_code == 0
    assert "first frame only:" in result.output and "pages.tif (3 frames)" in result.output


def test_icc_profiles_are_carried_to_jpeg_and_png_outputs(model, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    gray = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()  # not RGB
    image = _frames(1, 24)[0]
    image.save(src / "a.png", icc_profile=rgb)
    image.save(src / "b.jpg", icc_profile=rgb, quality=95)
    image.save(src / "c.png", icc_profile=gray)
    image.save(src / "d.png")
    convert_folder(src, tmp_path / "out", Translator.load(model, device="cpu"), progress=False)
    assert Image.open(tmp_path / "out" / "a.png").info.get("icc_profile") == rgb
    assert Image.open(tmp_path / "out" / "b.jpg").info.get("icc_profile") == rgb
    assert Image.open(tmp_path / "out" / "c.png").info.get("icc_profile") is None
    assert Image.open(tmp_path / "out" / "d.png").info.get("icc_profile") is None
    as_webp = convert_folder(
        src, tmp_path / "webp", Translator.load(model, device="cpu"), format="webp", progress=False
    )
    assert as_webp.converted == 4
    assert Image.open(tmp_path / "webp" / "a.webp").info.get("icc_profile") == rgb


def test_resize_shorter_and_center_crop_match_a_torchvision_pipeline(model, tmp_path):
    from torchvision import transforms as T

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(3)
    for name, (h, w) in {"tall.png": (50, 37), "wide.png": (29, 61)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(src / name)
    translator = Translator.load(model, device="cpu", precision="fp32")
    summary = convert_folder(
        src, tmp_path / "out", translator, resize_shorter=26, center_crop=24, progress=False
    )
    assert (summary.converted, summary.failed) == (2, [])
    pipeline = T.Compose(
        [T.Resize(26), T.CenterCrop(24), T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)]
    )
    for name in ("tall.png", "wide.png"):
        with torch.no_grad():
            y = translator.generator(pipeline(Image.open(src / name).convert("RGB"))[None])[0]
        expected = torch.floor((y + 1) / 2 * 255 + 0.5).clamp(0, 255).byte().permute(1, 2, 0)
        ours = torch.from_numpy(read_image(tmp_path / "out" / name)).int()
        assert ours.shape == (24, 24, 3)
        assert (ours - expected.int()).abs().max() <= 1, name

    too_small = convert_folder(src, tmp_path / "big", translator, center_crop=40, progress=False)
    assert sorted((p.name, r) for p, r in too_small.failed) == [
        ("tall.png", "37x50 is smaller than --center-crop 40"),
        ("wide.png", "61x29 is smaller than --center-crop 40"),
    ]


class _Constant(torch.nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, x):
        return torch.full_like(x, self.value)


def test_uint8_outputs_round_half_up(tiny_generator_file):
    # A float32 y whose y * 255 is exactly k + 0.5 with k even: half-to-even would give k.
    k = next(
        k
        for k in range(0, 254, 2)
        if torch.tensor((k + 0.5) / 255, dtype=torch.float32).mul(255).item() == k + 0.5
    )
    y = torch.tensor((k + 0.5) / 255, dtype=torch.float32)
    file = load_generators(tiny_generator_file)
    file.generators["AtoB"] = _Constant((2 * y - 1).item())
    out = Translator(file, device="cpu", precision="fp32")(np.zeros((4, 4, 3), np.uint8))
    assert (out == k + 1).all()
