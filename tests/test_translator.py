from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision import transforms as T

from translate.core.runtime import resolve_device
from translate.data.images import image_to_array, read_image
from translate.inference.transform import TranslateTransform
from translate.inference.translator import Translator
from translate.models.model_file import GeneratorSpec, LoadedModel, save_generators


def _model_file(path, in_channels=3, out_channels=3, both=False):
    """A tiny U-Net (size multiple 8) and, with ``both``, a one-block ResNet as BtoA."""
    spec = GeneratorSpec("unet_128", in_channels, out_channels, {"ngf": 4, "num_downs": 3})
    generators = {"AtoB": (spec, spec.build())}
    if both:
        spec_b = GeneratorSpec(
            "resnet_6blocks", out_channels, in_channels, {"ngf": 4, "n_blocks": 1, "norm": "batch"}
        )
        generators["BtoA"] = (spec_b, spec_b.build())
    save_generators(path, generators)
    return path


@pytest.fixture(scope="module")
def rgb_model(tmp_path_factory):
    return _model_file(tmp_path_factory.mktemp("m") / "rgb.safetensors", both=True)


@pytest.fixture(scope="module")
def translator(rgb_model):
    return Translator.load(rgb_model, device="cpu", batch_size=2)


class _Pointwise(nn.Module):
    """A per-pixel net: tiling must not change its output at all."""

    size_multiple = 8

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return torch.tanh(self.conv(x))


def _random_rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_each_input_kind_comes_back_as_the_same_kind_with_the_same_values(translator):
    arr = _random_rgb(24, 40)
    out_np = translator(arr)
    assert out_np.dtype == np.uint8 and out_np.shape == (24, 40, 3)
    out_pil = translator(Image.fromarray(arr))
    assert isinstance(out_pil, Image.Image) and out_pil.mode == "RGB"
    assert np.array_equal(np.asarray(out_pil), out_np)
    chw_u8 = torch.from_numpy(arr).permute(2, 0, 1)
    out_u8 = translator(chw_u8)
    assert out_u8.dtype == torch.uint8 and out_u8.shape == (3, 24, 40)
    assert np.array_equal(out_u8.permute(1, 2, 0).numpy(), out_np)
    nchw_float = chw_u8[None].float() / 255
    out_float = translator(nchw_float)
    assert out_float.dtype == torch.float32 and out_float.shape == (1, 3, 24, 40)
    assert out_float.min() >= 0 and out_float.max() <= 1
    assert torch.allclose(out_float[0] * 255, out_u8.float(), atol=0.51)
    # The value conversion works in place on its own copy, never on the caller's input.
    given = nchw_float.clone()
    translator(nchw_float)
    gray = np.ascontiguousarray(arr[..., 0]).astype(np.float32) / 255
    translator(gray)
    assert torch.equal(nchw_float, given) and np.array_equal(gray * 255, arr[..., 0])


def test_output_matches_the_generator_on_a_padded_input(rgb_model, translator):
    arr = _random_rgb(16, 24)  # already a multiple of 8: no padding, a direct comparison
    x = torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 127.5 - 1
    gen = translator.generator
    expected = ((gen(x)[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    assert np.abs(translator(arr).astype(int) - expected.astype(int)).max() <= 1


def test_odd_size_comes_back_at_its_size(translator):
    img = Image.fromarray(_random_rgb(203, 301))
    assert translator(img).size == (301, 203)


def test_grayscale_and_rgba_inputs(tmp_path, translator):
    gray = Image.fromarray(_random_rgb(20, 28)).convert("L")
    assert translator(gray).mode == "L"  # RGB to RGB model: gray in, gray out
    gray_model = Translator.load(_model_file(tmp_path / "g.safetensors", 1, 1), device="cpu")
    assert gray_model(gray).mode == "L"
    assert gray_model(np.asarray(gray)).shape == (20, 28)  # HW in, HW out
    assert gray_model(Image.fromarray(_random_rgb(20, 28))).mode == "L"

    rgba = np.dstack([_random_rgb(20, 28), np.full((20, 28), 255, np.uint8)])
    rgba[:10, :, 3] = 0
    out = translator(Image.fromarray(rgba))
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], rgba[..., 3])
    # As in training, transparent pixels are composited onto white before translation. A
    # per-pixel net makes that exact: a conv net's output there also depends on the opaque
    # rows, and near-zero outputs of an untrained net round to 127 or 128 at random.
    pointwise = Translator(
        LoadedModel({"AtoB": _Pointwise()}, {"AtoB": GeneratorSpec("pointwise", 3, 3)}),
        device="cpu",
    )
    out = pointwise(Image.fromarray(rgba))
    white = pointwise(np.full((20, 28, 3), 255, np.uint8))
    assert np.array_equal(np.asarray(out)[:4, :, :3], white[:4])


def test_translate_batch_groups_sizes_and_keeps_order(translator):
    images = [_random_rgb(16, 16, 1), _random_rgb(24, 16, 2), _random_rgb(16, 16, 3)]
    batched = translator.translate_batch(images)
    assert [b.shape[:2] for b in batched] == [(16, 16), (24, 16), (16, 16)]
    for image, out in zip(images, batched, strict=True):
        assert np.abs(translator(image).astype(int) - out.astype(int)).max() <= 1


@pytest.mark.parametrize(("precision", "passes"), [("fp32", [4]), ("bf16", [1, 1, 1, 1])])
def test_batch_mates_change_no_byte(precision, passes):
    # Precisions pinned (bf16 is emulated on a CPU without it: slower, the same contract).
    # Batched, oneDNN's bf16 transposed convolutions summed the demo's features in an order
    # set by the batch size: on an avx512_bf16 AMD EPYC two of these four samples came out
    # a grey level apart from their translation alone. fp32's kernels do not, so fp32
    # images share a pass.
    translator = Translator.load("demo", device="cpu", precision=precision, batch_size=4)
    seen = []
    translator.generator.register_forward_pre_hook(lambda _, args: seen.append(len(args[0])))
    samples = sorted((Path(__file__).parents[1] / "datasets" / "samples").glob("*.png"))[4:8]
    images = [read_image(path) for path in samples]
    together = translator.translate_batch(images)
    assert seen == passes
    for image, out in zip(images, together, strict=True):
        assert np.array_equal(translator(image), out)


def test_direction_picks_the_generator(rgb_model):
    arr = _random_rgb(16, 16)
    a = Translator.load(rgb_model, device="cpu")(arr)
    b = Translator.load(rgb_model, device="cpu", direction="BtoA")(arr)
    assert not np.array_equal(a, b)
    with pytest.raises(ValueError, match="AtoB"):
        Translator.load(_model_file_path_only_atob(rgb_model), direction="BtoA")


def _model_file_path_only_atob(rgb_model):
    gf = Translator.load(rgb_model, device="cpu").model
    return LoadedModel({"AtoB": gf.generators["AtoB"]}, {"AtoB": gf.specs["AtoB"]})


def test_tiles_blend_without_seams():
    spec = GeneratorSpec("pointwise", 3, 3)
    model = LoadedModel({"AtoB": _Pointwise()}, {"AtoB": spec})
    whole = Translator(model, device="cpu")
    tiled = Translator(model, device="cpu", tile=32, overlap=12)
    x = torch.rand(2, 3, 77, 90)
    assert torch.allclose(tiled(x), whole(x), atol=1e-5)


def test_tiles_match_a_conv_net_away_from_the_tile_borders(rgb_model):
    whole = Translator.load(rgb_model, device="cpu", direction="BtoA")  # batch norm: a local op
    tiled = Translator.load(rgb_model, device="cpu", direction="BtoA", tile=48, overlap=16)
    x = torch.rand(1, 3, 80, 80)
    diff = (tiled(x) - whole(x)).abs()
    assert diff.mean() < 1e-3
    # Each corner is deep inside one tile: the tile sees the same neighbourhood there.
    assert diff[..., :8, :8].max() < 1e-5 and diff[..., -8:, -8:].max() < 1e-5


def test_size_resizes_for_the_model_and_back(translator, rgb_model):
    arr = _random_rgb(40, 56)
    sized = Translator.load(rgb_model, device="cpu", size=32)
    assert sized(arr).shape == (40, 56, 3)
    assert not np.array_equal(sized(arr), translator(arr))
    same = Translator.load(rgb_model, device="cpu", size=40)
    assert np.array_equal(same(arr[:, :40]), translator(arr[:, :40]))


def test_precision_choices(rgb_model, translator):
    x = torch.rand(1, 3, 16, 16)
    bf16 = Translator.load(rgb_model, device="cpu", precision="bf16")
    assert torch.allclose(bf16(x), translator(x), atol=0.05)
    with pytest.raises(ValueError, match="fp16 needs a CUDA"):
        Translator.load(rgb_model, device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="precision"):
        Translator.load(rgb_model, device="cpu", precision="int8")


def test_bad_inputs_are_named(translator):
    with pytest.raises(TypeError, match="uint8, uint16 or float numpy array, got int32"):
        translator(np.zeros((8, 8, 3), np.int32))
    with pytest.raises(TypeError, match="uint8, uint16 or float values, got torch.int64"):
        translator(torch.zeros(3, 8, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match="channels"):
        translator(torch.rand(5, 8, 8))
    hwc = r"tensors are CHW or NCHW .* shape \(8, 8, 3\) has 8 in the channel dimension"
    with pytest.raises(ValueError, match=hwc):
        translator(torch.rand(8, 8, 3))
    with pytest.raises(TypeError, match="PIL image"):
        translator([1, 2, 3])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_device_auto_falls_back_and_missing_cuda_is_refused():
    assert resolve_device("auto").type in ("cpu", "mps")
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda:0")
    with pytest.raises(ValueError, match="expected auto, cpu"):
        resolve_device("gpu")


def test_transform_in_albumentations_compose(translator):
    image = _random_rgb(24, 24)
    always = A.Compose([TranslateTransform(translator, p=1.0)])
    never = A.Compose([TranslateTransform(translator, p=0.0)])
    assert np.array_equal(always(image=image)["image"], translator(image))
    assert np.array_equal(never(image=image)["image"], image)


def test_transform_in_torchvision_pipeline(translator):
    image = Image.fromarray(_random_rgb(24, 24))
    always = T.Compose([TranslateTransform(translator, p=1.0), T.PILToTensor()])
    never = T.Compose([TranslateTransform(translator, p=0.0), T.PILToTensor()])
    expected = image_to_array(translator(image))
    assert np.array_equal(always(image).permute(1, 2, 0).numpy(), expected)
    assert np.array_equal(never(image).permute(1, 2, 0).numpy(), np.asarray(image))
    tensor = T.PILToTensor()(image)
    assert torch.equal(TranslateTransform(translator, p=1.0)(tensor), translator(tensor))


# --- value ranges: one test per row of the README's table ---------------------------------


@pytest.fixture(scope="module")
def reference(translator):
    """An RGB and a gray image, and what the translator makes of them as uint8 arrays."""
    rgb = _random_rgb(16, 24, seed=3)
    gray = rgb[..., 1].copy()
    return rgb, translator(rgb), gray, translator(gray)


def _close(got, expected_u8, scale=1.0, offset=0.0, atol=0.51):
    """``got`` mapped back to 0-255 is within rounding of the uint8 result."""
    got = (np.asarray(got, dtype=np.float64) - offset) * scale
    return np.abs(got - expected_u8.astype(np.float64)).max() <= atol


def test_row_numpy_uint8_keeps_layout(reference):
    rgb, out_rgb, gray, out_gray = reference
    assert out_rgb.dtype == np.uint8 and out_rgb.shape == (16, 24, 3)
    assert out_gray.dtype == np.uint8 and out_gray.shape == (16, 24)  # HW in, HW out


def test_row_numpy_uint16(translator, reference):
    rgb, out_rgb, gray, out_gray = reference
    out = translator(rgb.astype(np.uint16) * 257)
    assert out.dtype == np.uint16 and out.shape == rgb.shape
    assert _close(out, out_rgb, scale=1 / 257)
    assert translator(gray.astype(np.uint16) * 257).shape == gray.shape


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_row_numpy_float_in_0_1(translator, reference, dtype):
    rgb, out_rgb, gray, out_gray = reference
    out = translator((rgb / 255).astype(dtype))
    assert out.dtype == dtype and out.shape == rgb.shape
    assert out.min() >= 0 and out.max() <= 1
    assert _close(out, out_rgb, scale=255, atol=0.51 if dtype != np.float16 else 1.0)
    assert translator((gray / 255).astype(dtype)).shape == gray.shape


def test_row_normalized_input_with_value_range(rgb_model, reference):
    rgb, out_rgb, _, _ = reference
    normalized = Translator.load(rgb_model, device="cpu", value_range=(-1, 1))
    chw = torch.from_numpy(rgb).permute(2, 0, 1).float() / 127.5 - 1  # Normalize(0.5, 0.5)
    out = normalized(chw)
    assert out.dtype == torch.float32 and out.shape == chw.shape
    assert out.min() >= -1 and out.max() <= 1 and out.min() < 0  # still in [-1, 1]
    assert _close(out.permute(1, 2, 0).numpy(), out_rgb, scale=127.5, offset=-1)
    assert _close(normalized(rgb.astype(np.float32) / 127.5 - 1), out_rgb, 127.5, -1)
    assert np.array_equal(normalized(rgb), out_rgb)  # integer inputs keep their fixed range


def test_row_out_of_range_float_is_an_error_naming_the_range(translator, reference):
    rgb = reference[0]
    normalized = torch.from_numpy(rgb).permute(2, 0, 1).float() / 127.5 - 1
    with pytest.raises(
        ValueError,
        match=r"span \[-1, 1\], outside the expected value_range "
        r"\(0, 1\); pass value_range=\(-1, 1\)",
    ):
        translator(normalized)
    with pytest.raises(ValueError, match=r"span \[0, 255\].*value_range=\(0, 255\)"):
        translator(rgb.astype(np.float32))
    with pytest.raises(ValueError, match="NaN"):
        translator(np.full((8, 8), np.nan, np.float32))


def test_row_torch_uint8_and_float(translator, reference):
    rgb, out_rgb, gray, out_gray = reference
    chw = torch.from_numpy(rgb).permute(2, 0, 1)
    out = translator(chw[None])
    assert out.dtype == torch.uint8 and out.shape == (1, 3, 16, 24)
    assert np.array_equal(out[0].permute(1, 2, 0).numpy(), out_rgb)
    out = translator(torch.from_numpy(rgb.astype(np.uint16) * 257).permute(2, 0, 1))
    assert out.dtype == torch.uint16 and _close(out.permute(1, 2, 0).numpy(), out_rgb, 1 / 257)
    out = translator(torch.from_numpy(gray)[None].double() / 255)
    assert out.dtype == torch.float64 and out.shape == (1, 16, 24)
    assert _close(out[0].numpy(), out_gray, scale=255)


def test_row_pil_modes(translator, reference):
    rgb, out_rgb, gray, out_gray = reference
    assert np.array_equal(np.asarray(translator(Image.fromarray(rgb))), out_rgb)
    out = translator(Image.fromarray(gray))
    assert out.mode == "L" and np.array_equal(np.asarray(out), out_gray)
    for mode in ("P", "CMYK"):
        assert translator(Image.fromarray(rgb).convert(mode)).mode == "RGB"
    la = Image.fromarray(np.dstack([gray, np.full_like(gray, 200)]), "LA")
    out = translator(la)
    assert out.mode == "LA" and np.all(np.asarray(out)[..., 1] == 200)
    sixteen = Image.fromarray(gray.astype(np.uint16) * 257)
    assert sixteen.mode == "I;16"
    out = translator(sixteen)
    assert out.mode == "I;16" and _close(np.asarray(out), out_gray, scale=1 / 257)


def test_row_gray_to_rgb_model_gives_rgb(tmp_path, reference):
    colorize = Translator.load(_model_file(tmp_path / "c.safetensors", 1, 3), device="cpu")
    gray = reference[2]
    assert colorize(gray).shape == (16, 24, 3)
    assert colorize(Image.fromarray(gray)).mode == "RGB"


@pytest.mark.parametrize(
    ("shape", "dtype", "dropout"),
    [((70, 45, 4), np.uint8, False), ((70, 45), np.uint16, False), ((61, 50, 3), np.uint8, True)],
    ids=["rgba", "gray16", "dropout"],
)
def test_rows_in_bands_are_the_whole_tiled_image_byte_for_byte(shape, dtype, dropout):
    """translate_rows hands on finished rows band by band (a 2x model, alpha enlarged per
    band, seeded dropout): joined, they are translate_batch's tiled output exactly, and
    every tile's pass is reported."""
    torch.manual_seed(0)
    spec = GeneratorSpec.declared("toy_upscale2_conftest", 3, 3, {})
    net = spec.build().eval()
    if dropout:
        net.body.insert(1, nn.Dropout2d(0.5))
    model = LoadedModel({"AtoB": net}, {"AtoB": spec})
    translator = Translator(model, device="cpu", tile=24, overlap=6, dropout=dropout)
    image = np.random.default_rng(1).integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    bands, tiles = [], []
    translator.translate_rows(image, bands.append, lambda *progress: tiles.append(progress))
    assert len(bands) == 4 and all(b.shape[1:] == bands[0].shape[1:] for b in bands)
    assert tiles == [(i, 12) for i in range(1, 13)]  # 4 rows of 3 tiles
    rows = np.concatenate(bands)
    expected = translator.translate_batch([image])[0]
    assert rows.dtype == expected.dtype == dtype and rows.shape == expected.shape
    assert np.array_equal(rows, expected)


def test_an_image_within_one_tile_is_one_band(translator):
    image = _random_rgb(20, 30)
    bands, tiles = [], []
    translator.translate_rows(image, bands.append, lambda done, total: tiles.append(total))
    assert tiles == [1] and len(bands) == 1
    assert np.array_equal(bands[0], translator(image))
