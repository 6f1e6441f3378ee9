"""The converter's speed settings: the PNG zlib level (--png-compression) and the model's
threads (all of torch's but one, left to the codecs)."""

import io
import json
import zlib

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image, ImageCms

from translate.cli import main
from translate.conversion.convert import convert_folder
from translate.conversion.manifest import MANIFEST_NAME
from translate.data import images
from translate.data.images import FAST_PNG, png_bytes, png_rows, write_image
from translate.inference.options import ConvertOptions, OptionError
from translate.models.model_file import GeneratorSpec, save_generators


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    spec = GeneratorSpec("resnet_6blocks", 3, 3, {"ngf": 4, "n_blocks": 1})
    path = tmp_path_factory.mktemp("model") / "g.safetensors"
    save_generators(path, {"AtoB": (spec, spec.build())})
    return path


@pytest.fixture
def src(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    y, x = np.mgrid[0:48, 0:48]
    for i in range(2):  # smooth, so that the zlib level shows in the size
        arr = np.stack([x * 5, y * 5, (x + y + 20 * i) % 256], axis=2).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"{i}.png")
    return folder


def _cli(*args):
    return CliRunner().invoke(main, ["convert", *map(str, args), "--no-progress"])


def _pixels(folder):
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))}


def test_png_level_keeps_the_pixels_and_is_recorded(model, src, tmp_path):
    fast, small = tmp_path / "fast", tmp_path / "small"
    assert _cli(model, src, fast, "--precision", "fp32").exit_code == 0
    assert _cli(model, src, small, "--precision", "fp32", "--png-compression", "9").exit_code == 0
    assert ConvertOptions().png_compression == FAST_PNG == 1
    records = [json.loads((d / MANIFEST_NAME).read_text())["options"] for d in (fast, small)]
    assert [r["png_compression"] for r in records] == [1, 9]
    pixels = _pixels(fast)
    assert pixels.keys() == _pixels(small).keys() and len(pixels) == 2
    for name, arr in _pixels(small).items():
        np.testing.assert_array_equal(arr, pixels[name])
    # Level 0 stores the filtered rows, 9 compresses them most.
    stored = tmp_path / "stored"
    assert _cli(model, src, stored, "--precision", "fp32", "--png-compression", "0").exit_code == 0
    size = sum(p.stat().st_size for p in stored.glob("*.png"))
    assert size > sum(p.stat().st_size for p in small.glob("*.png"))

    # Another level into the same folder is another conversion, as for --quality.
    refused = _cli(model, src, small, "--precision", "fp32")
    assert refused.exit_code == 1 and "png_compression 1 here, 9 there" in refused.output


def test_level_6_writes_the_bytes_pil_wrote_before(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    write_image(tmp_path / "a.png", arr, png_compression=6)
    before = io.BytesIO()
    Image.fromarray(arr).save(before, format="PNG")  # PIL's default: what convert wrote
    assert (tmp_path / "a.png").read_bytes() == before.getvalue()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_rows_and_16_bit_colour_take_the_level(tmp_path, dtype):
    cv2 = pytest.importorskip("cv2")
    arr = (np.arange(32 * 40 * 3).reshape(32, 40, 3) % 200).astype(dtype)
    sizes = {}
    for level in (0, 9):
        with png_rows(tmp_path / f"rows{level}.png", 32, 40, 3, dtype, compression=level) as write:
            write(arr[:16])
            write(arr[16:])
        write_image(tmp_path / f"whole{level}.png", arr, png_compression=level)
        for kind in ("rows", "whole"):
            path = tmp_path / f"{kind}{level}.png"
            read = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1]
            np.testing.assert_array_equal(read, arr)
            sizes[kind, level] = path.stat().st_size
    # Level 0 stores the filtered rows, 9 compresses them.
    assert sizes["rows", 0] > sizes["rows", 9] and sizes["whole", 0] > sizes["whole", 9]


def test_a_bad_level_is_one_line(model, src, tmp_path):
    result = _cli(model, src, tmp_path / "out", "--png-compression", "10")
    assert result.exit_code == 2 and "--png-compression" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(OptionError, match="png_compression: must be at most 9, got 10"):
        convert_folder(src, tmp_path / "out", model, png_compression=10)


def test_a_folder_from_before_the_level_was_recorded_resumes_at_level_6(model, src, tmp_path):
    dst = tmp_path / "out"
    assert _cli(model, src, dst, "--precision", "fp32", "--png-compression", "6").exit_code == 0
    path = dst / MANIFEST_NAME
    record = json.loads(path.read_text())
    del record["options"]["png_compression"], record["options"]["compile"]  # as written before
    path.write_text(json.dumps(record))
    (dst / "1.png").unlink()

    refused = _cli(model, src, dst, "--precision", "fp32")
    assert refused.exit_code == 1 and "png_compression 1 here, 6 there" in refused.output
    resumed = _cli(model, src, dst, "--precision", "fp32", "--png-compression", "6")
    assert resumed.exit_code == 0 and "converted 1, skipped 1" in resumed.output


def _photo_like(height: int, width: int) -> np.ndarray:
    """Smooth shapes of 16 px and grain."""
    rng = np.random.default_rng(0)
    shapes = rng.integers(0, 200, (height // 16, width // 16, 3)).repeat(16, 0).repeat(16, 1)
    return (shapes + rng.integers(0, 24, (height, width, 3))).astype(np.uint8)


@pytest.mark.parametrize("kind", ["whole", "rows"])
def test_level_1_deflates_with_isa_l_into_files_no_larger_than_zlibs(tmp_path, monkeypatch, kind):
    """Level 1 (the default) deflates with ISA-L, here no larger than zlib's level 1 on a
    photo-like image (smooth shapes and grain), the pixels the same."""
    arr = _photo_like(64, 64)

    def write(path):
        if kind == "rows":
            with png_rows(path, 64, 64, 3, compression=1) as rows:
                rows(arr)
        else:
            write_image(path, arr, png_compression=1)

    write(tmp_path / "isal.png")
    monkeypatch.setattr(images, "_deflater", lambda level: zlib.compressobj(level))
    write(tmp_path / "zlib.png")
    for name in ("isal.png", "zlib.png"):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / name)), arr)
    isal, plain = ((tmp_path / name).read_bytes() for name in ("isal.png", "zlib.png"))
    assert isal != plain and len(isal) <= len(plain)


@pytest.mark.parametrize("level", [1, 6])
def test_a_pngs_bytes_do_not_depend_on_the_bands_its_rows_come_in(tmp_path, monkeypatch, level):
    """ISA-L's output depends on how its input is split: png_rows hands it blocks of one
    size whatever the bands (here several blocks, bands that straddle them)."""
    monkeypatch.setattr(images, "_DEFLATE_BLOCK", 1000)
    arr = _photo_like(128, 80)
    for bands in ([128], [1] * 128, [7, 13, 108]):
        with png_rows(tmp_path / f"{len(bands)}.png", 128, 80, 3, compression=level) as rows:
            for band in np.split(arr, np.cumsum(bands)[:-1]):
                rows(band)
    whole = (tmp_path / "1.png").read_bytes()
    assert (tmp_path / "128.png").read_bytes() == whole == (tmp_path / "3.png").read_bytes()
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "1.png")), arr)


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((20, 30), np.uint8), ((20, 30, 3), np.uint8), ((20, 30, 4), np.uint8),
     ((20, 30), np.uint16), ((20, 30, 3), np.uint16)],
)  # fmt: skip
def test_level_1_images_are_written_as_png_rows_writes_them(tmp_path, shape, dtype):
    """At the fast level a whole image goes through png_rows' writer (PNG's Sub filter on
    every row, not PIL's per-row search of five filters): its bytes, the pixels and the
    profile kept; png_bytes (the server's replies) gives the same bytes in memory."""
    arr = np.random.default_rng(0).integers(0, 200, shape).astype(dtype)
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    icc = profile if len(shape) == 3 else None  # an RGB profile fits colour images only
    write_image(tmp_path / "whole.png", arr, icc_profile=icc, png_compression=FAST_PNG)
    channels = shape[2] if len(shape) == 3 else 1
    with png_rows(tmp_path / "rows.png", *shape[:2], channels, dtype, icc, 1) as rows:
        rows(arr)
    assert (tmp_path / "whole.png").read_bytes() == (tmp_path / "rows.png").read_bytes()
    assert png_bytes(arr, icc) == (tmp_path / "whole.png").read_bytes()
    read = Image.open(tmp_path / "whole.png")
    if dtype == np.uint8:  # PIL reads 16-bit colour as 8 bits
        np.testing.assert_array_equal(np.asarray(read), arr)
        assert read.info.get("icc_profile") == icc
