"""Generators declare their geometry (output scale, input kind): the model file stores it and
inference (padding, tiles, batches, the memory budget) reads it instead of assuming 1x."""

import io
import json
import random

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from translate.conversion.convert import convert_folder
from translate.conversion.video import convert_video
from translate.data.images import read_image
from translate.data.transforms import Preprocess, ScaledPairTransform
from translate.evaluation.scores import model_images
from translate.inference.memory import MemoryBudget
from translate.inference.translator import Translator
from translate.models.model_file import (
    GeneratorSpec,
    InputSpec,
    LoadedModel,
    load_generators,
    save_generators,
)
from translate.networks import GENERATORS, Generator
from translate.training.configure import from_dict, validate
from translate.training.engine import Engine
from translate.training.report import sample_grid

TOY = "pixel_repeat2_test_geometry"


@GENERATORS.register(TOY)
class PixelRepeat2(Generator):
    """Per pixel: a 1x1 convolution, then each pixel repeated 2x2 (so tiles are exact)."""

    scale = 2
    size_multiple = 1

    def __init__(
        self,
        in_channels: int = 4,
        out_channels: int = 3,
        ngf: int = 4,
        norm: str = "none",  # taken as pix2pix's defaults give it: a 1x1 net has no norm
        dropout: bool = False,
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, ngf, 1),
            nn.Tanh(),
            nn.Dropout(0.5) if dropout else nn.Identity(),
            nn.Conv2d(ngf, out_channels, 1),
            nn.Tanh(),
            nn.Upsample(scale_factor=self.scale, mode="nearest"),
        )

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


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


def test_a_file_without_its_geometry_is_refused_naming_the_keys(tmp_path):
    spec = GeneratorSpec("resnet_6blocks", 3, 3, {"ngf": 4, "n_blocks": 1})
    path = tmp_path / "m.safetensors"
    save_generators(path, {"AtoB": (spec, spec.build())})
    old = _rewrite(
        path, tmp_path / "old.safetensors", lambda g: [g.pop("scale"), g.pop("input_kind")]
    )
    with pytest.raises(ValueError, match=r"AtoB: missing key\(s\) \['input_kind', 'scale'\]$"):
        load_generators(old)


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


def test_the_file_stores_the_classes_size_multiple(tmp_path):
    spec = GeneratorSpec("resnet_6blocks", 3, 3, {"ngf": 4, "n_blocks": 1})  # by hand: None
    path = tmp_path / "m.safetensors"
    save_generators(path, {"AtoB": (spec, spec.build())})
    with safe_open(str(path), "pt") as f:
        assert json.loads(f.metadata()["generators"])["AtoB"]["size_multiple"] == 4
    assert GeneratorSpec.declared("unet_128", 3, 3, {"ngf": 4, "num_downs": 5}).size_multiple == 32


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda g: g.update(size_multiple=0), "generators.AtoB.size_multiple: expected a positive"),
        (lambda g: g.update(size_multiple=8), "size_multiple: the file says 8, " + TOY + " declar"),
    ],
)
def test_a_stored_size_multiple_the_class_does_not_declare_is_refused(
    toy_file, tmp_path, edit, message
):
    bad = _rewrite(toy_file, tmp_path / "bad.safetensors", edit)
    with pytest.raises(ValueError, match=message) as info:
        load_generators(bad)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)


class _Recording(nn.Module):
    """Per pixel, remembering the sides of each input it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.sides: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sides.append(tuple(x.shape[-2:]))
        return x[:, :3]


def test_inference_pads_to_the_specs_size_multiple_not_the_modules():
    net = _Recording()  # declares no size_multiple (1): the spec's 8 is what pads
    spec = GeneratorSpec("recording", 3, 3, size_multiple=8)
    translator = Translator(LoadedModel({"AtoB": net}, {"AtoB": spec}), device="cpu")
    assert translator(torch.rand(3, 10, 17)).shape == (3, 10, 17)
    assert net.sides == [(16, 24)]
    resolved = LoadedModel({"AtoB": net}, {"AtoB": GeneratorSpec("recording", 3, 3)})
    assert resolved.specs["AtoB"].size_multiple == 1  # None: the module's


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
    assert InputSpec.from_dict({"input_channels": 4, "output_channels": 7}).input_channels == 4


def _paired_lr_hr(root, count=4, side=12):
    """A/ holds RGBA images with varying alpha, B/ RGB images twice their size."""
    rng = np.random.default_rng(2)
    for split in ("train", "val"):
        for i in range(count):
            rgba = rng.integers(0, 256, (side, side, 4), dtype=np.uint8)
            (root / "A" / split).mkdir(parents=True, exist_ok=True)
            (root / "B" / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgba, "RGBA").save(root / "A" / split / f"{i}.png")
            hr = np.repeat(np.repeat(rgba[..., :3], 2, axis=0), 2, axis=1)
            Image.fromarray(hr).save(root / "B" / split / f"{i}.png")
    return root


def test_paired_crops_put_the_target_box_at_scale_times_the_input_box():
    image = np.arange(10 * 12 * 4, dtype=np.uint8).reshape(10, 12, 4)
    target = np.repeat(np.repeat(image[..., :3], 2, axis=0), 2, axis=1)
    pre = Preprocess(mode="crop", crop_size=12, flip=True)  # HR pixels: 6 px input crops
    transform = ScaledPairTransform(pre, 2)
    for seed in range(8):  # both flips and several positions
        transform.set_random_state(np.random.default_rng(seed), random.Random(seed))
        out = transform(image=image, target=target)
        assert out["image"].shape == (6, 6, 4) and out["target"].shape == (12, 12, 3)
        expected = np.repeat(np.repeat(out["image"][..., :3], 2, axis=0), 2, axis=1)
        assert np.array_equal(out["target"], expected)
    with pytest.raises(ValueError, match="preprocess.mode: 'scale_width' does not keep"):
        ScaledPairTransform(Preprocess(mode="scale_width"), 2)


def test_a_scale_2_rgba_generator_trains_and_converts_folders_and_tiles(tmp_path):
    """The acceptance walk: nothing outside this module names the toy generator."""
    data = _paired_lr_hr(tmp_path / "data")
    config = {
        "model": "pix2pix",
        "data": {
            "root": str(data),
            "input_channels": 4,
            "preprocess": {"mode": "crop", "crop_size": 16, "size_multiple": 1},  # HR pixels
            "num_workers": 0,
            "val_size": 2,
        },
        "generator": {"name": TOY, "options": {}},
        "discriminator": {"options": {"ndf": 4, "n_layers": 1}},
        "train": {"batch_size": 2, "max_steps": 2},
        "log": {"every": 1, "eval_every": 1000, "checkpoint_every": 1000, "tensorboard": False},
    }
    Engine(from_dict(config), tmp_path / "run", progress=False).fit()
    model = tmp_path / "run" / "generator_latest.safetensors"
    assert load_generators(model).specs["AtoB"].scale == 2

    convert_folder(data / "A" / "val", tmp_path / "out", model, format="png")
    for src in sorted((data / "A" / "val").glob("*.png")):
        with Image.open(src) as a, Image.open(tmp_path / "out" / src.name) as b:
            assert b.size == (2 * a.size[0], 2 * a.size[1])

    big = np.random.default_rng(3).integers(0, 256, (41, 53, 4), dtype=np.uint8)
    tiled = Translator.load(model, device="cpu", tile=16, overlap=4)(Image.fromarray(big, "RGBA"))
    assert tiled.size == (106, 82)


def test_training_samples_show_a_smaller_input_at_the_outputs_size():
    grid = sample_grid({"input": torch.zeros(2, 4, 8, 8), "output": torch.zeros(2, 3, 16, 16)})
    assert grid.shape[1] == 2 * 16 + 3 * 2  # two 16-px columns and their padding


def test_a_scale_2_generator_writes_videos_at_twice_the_frame_size(tmp_path):
    av = pytest.importorskip("av")
    spec = GeneratorSpec.declared(TOY, 3, 3, {})
    save_generators(tmp_path / "rgb.safetensors", {"AtoB": (spec, spec.build())})
    clip = tmp_path / "in.mp4"
    with av.open(str(clip), "w") as sink:
        stream = sink.add_stream("h264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        for i in range(3):
            frame = np.full((24, 32, 3), 40 * i, np.uint8)
            sink.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        sink.mux(stream.encode())
    translator = Translator.load(tmp_path / "rgb.safetensors", device="cpu")
    convert_video(clip, tmp_path / "out.mp4", translator)
    with av.open(str(clip)) as src, av.open(str(tmp_path / "out.mp4")) as out:
        a, b = src.streams.video[0].codec_context, out.streams.video[0].codec_context
        assert (b.width, b.height) == (2 * a.width, 2 * a.height)


def _serve_client(model):
    pytest.importorskip("fastapi", reason="translate serve needs the serve extra")
    from fastapi.testclient import TestClient  # noqa: PLC0415  (the serve extra)

    from translate.apps.serve.app import create_app  # noqa: PLC0415
    from translate.apps.serve.models import Models  # noqa: PLC0415

    return TestClient(
        create_app(Models([str(model)], device="cpu")),
        headers={"content-type": "application/octet-stream"},
    )


def test_serve_returns_an_upload_at_twice_its_size(toy_file):
    client = _serve_client(toy_file)
    upload = io.BytesIO()
    rgba = np.random.default_rng(4).integers(0, 256, (22, 30, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(upload, format="PNG")
    response = client.post(f"/api/translate?model={toy_file}&name=x.png", content=upload.getvalue())
    assert response.status_code == 200, response.text
    assert Image.open(io.BytesIO(response.content)).size == (60, 44)


def test_serve_live_frames_come_back_at_twice_their_size(toy_file):
    client = _serve_client(toy_file)
    from translate.apps.serve.app import FRAME_HEADER  # noqa: PLC0415  (the serve extra)

    rng = np.random.default_rng(5)
    with client.websocket_connect(f"/api/live?model={toy_file}") as ws:
        for sent_at, (width, height) in enumerate([(24, 16), (31, 17)]):
            jpeg = io.BytesIO()
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(jpeg, format="JPEG")
            ws.send_bytes(FRAME_HEADER.pack(sent_at) + jpeg.getvalue())
            reply = ws.receive_bytes()
            assert FRAME_HEADER.unpack_from(reply)[0] == sent_at
            with Image.open(io.BytesIO(reply[FRAME_HEADER.size :])) as out:
                assert out.size == (2 * width, 2 * height)
            assert "model_ms" in ws.receive_json()


def test_evaluation_reads_targets_at_the_generators_scale(toy_file, tmp_path):
    data = _paired_lr_hr(tmp_path / "data", count=2)
    model = load_generators(toy_file)
    preprocess = InputSpec(Preprocess(mode="none", size_multiple=1), 4, 3)
    total, pairs = model_images(model.generators["AtoB"], data, preprocess)
    (output, target), *_ = list(pairs)
    assert total == 2 and output.shape == target.shape == (2, 3, 24, 24)
