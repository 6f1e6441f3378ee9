"""What a file holds besides its first frame's pixels: more frames, an ICC profile."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageCms

from translate.cli import main
from translate.data.images import read_image
from translate.inference.convert import convert_folder
from translate.inference.translator import Translator


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
