"""Label models in use: noise from --seed and --style in the Translator and convert, label
videos, and serve's label upload and paint endpoint (the page itself: test_serve_browser)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import EXPORTED, tool_module
from noise_generator import CLASSES, NOISE, save_toy
from PIL import Image

from translate.cli import main
from translate.conversion.manifest import MANIFEST_NAME
from translate.inference.export import TOLERANCE, export_generator
from translate.inference.translator import Translator
from translate.models.loading import load_model
from translate.models.model_file import GeneratorSpec, save_generators
from translate.networks import count_parameters


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("noise") / "noise.safetensors"
    save_toy(path, labels={"names": ["sea", "land", "hill", "ice"]})
    return path


@pytest.fixture(scope="module")
def styled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SPADE with a style encoder on the toy's classes and code length, its weights
    spread (init gain 1, the code's linear layer ten times that) so that codes show."""
    path = tmp_path_factory.mktemp("styled") / "spade.safetensors"
    options = {"ngf": 2, "hidden": 4, "style_dim": NOISE, "init_gain": 1.0}
    spec = GeneratorSpec.declared("spade", CLASSES, 3, options)
    torch.manual_seed(0)
    net = spec.build()
    with torch.no_grad():
        net.fc.weight.mul_(10)
    save_generators(path, {"AtoB": (spec, net)})
    return path


def ids(seed: int = 0, size: tuple[int, int] = (10, 13)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, CLASSES, size).astype(np.uint8)


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_same_seed_gives_the_same_image_and_another_seed_another(toy: Path) -> None:
    labels = ids()
    first = Translator.load(toy, device="cpu", seed=3)(labels)
    again = Translator.load(toy, device="cpu", seed=3)
    assert np.array_equal(first, again(labels))
    # one code for every image, whatever its batch mates
    assert np.array_equal(again.translate_batch([ids(1), labels])[1], first)
    other = Translator.load(toy, device="cpu", seed=4)(labels)
    assert np.abs(first.astype(int) - other).mean() > 5
    # no seed given: the default seed, so conversions repeat
    assert np.array_equal(
        Translator.load(toy, device="cpu")(labels),
        Translator.load(toy, device="cpu", seed=0)(labels),
    )


def test_a_style_image_sets_the_code_through_encode_style(toy: Path, tmp_path: Path) -> None:
    labels = ids()
    outputs = []
    for value in (20, 230):
        style = tmp_path / f"style{value}.png"
        Image.fromarray(np.full((6, 5, 3), value, np.uint8)).save(style)
        translator = Translator.load(toy, device="cpu", style=str(style))
        x = np.full((1, 3, 1, 1), value / 127.5 - 1, np.float32)
        expected = translator.generator.encode_style(torch.from_numpy(x))
        assert torch.allclose(translator.padded.generator.code, expected)
        # the seed does not matter once a style gives the code
        seeded = Translator.load(toy, device="cpu", style=str(style), seed=9)(labels)
        outputs.append(translator(labels))
        assert np.array_equal(outputs[-1], seeded)
    assert not np.array_equal(*outputs)


def test_a_style_without_encoder_and_torchscript_of_noise_are_refused_in_one_line(
    toy: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"^style .*no style encoder; drop the style") as info:
        Translator.load("demo", device="cpu", style=str(tmp_path / "any.png"))
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"^style: .*missing\.png: file not found$"):
        Translator.load(toy, device="cpu", style=str(tmp_path / "missing.png"))
    with pytest.raises(ValueError, match=r"^this model takes a noise code \(noise_dim 3\).*onnx"):
        export_generator(load_model(toy), tmp_path / "toy.pt")
    assert not (tmp_path / "toy.pt").exists()


@pytest.mark.parametrize("model_file", ["toy", "styled"])
def test_a_noise_models_onnx_graph_takes_the_code_and_gives_torchs_image(
    model_file: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    model = load_model(request.getfixturevalue(model_file))
    path = export_generator(model, tmp_path / "g.onnx", "onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input", "z"]
    # 32x64: a grid of 1x2 for SPADE, whose code map is resized from 8x8 to it
    x = torch.nn.functional.one_hot(torch.from_numpy(ids(size=(32, 64))).long(), CLASSES)
    x = x.permute(2, 0, 1)[None].float().repeat(2, 1, 1, 1) * 2 - 1
    z = torch.randn(2, NOISE, generator=torch.Generator().manual_seed(1))
    got = session.run(None, {"input": x.numpy(), "z": z.numpy()})[0]
    with torch.no_grad():  # the model's own generator: spectral norm baked as it computes it
        expected = model.generators["AtoB"](x, z=z).numpy()
    assert np.abs(got - expected).max() < TOLERANCE and np.abs(got[0] - got[1]).max() > 0.01


@pytest.mark.parametrize("model_file", ["toy", "styled"])
@pytest.mark.parametrize("backend", EXPORTED)
def test_the_export_backends_feed_the_seeds_code_each_maps_or_the_styles_as_torch(
    model_file: str, backend: str, request: pytest.FixtureRequest, tmp_path: Path, own_home: Path
) -> None:
    pytest.importorskip("onnxruntime")  # own_home: an export of this code, not a cached one
    model = request.getfixturevalue(model_file)
    labels, maps = ids(), [ids(), ids(1)]
    torch_run = Translator.load(model, device="cpu", seed=3)
    exported = Translator.load(model, device="cpu", seed=3, backend=backend)
    assert exported.backend == backend
    assert np.abs(exported(labels).astype(int) - torch_run(labels)).max() <= 1
    names = ["a.png", "b.png"]
    pairs = zip(
        exported.translate_batch(maps, names), torch_run.translate_batch(maps, names), strict=True
    )
    for got_map, want in pairs:
        assert np.abs(got_map.astype(int) - want).max() <= 1
    # another seed is another code: the graph's z input is read, not left at a default
    other = Translator.load(model, device="cpu", seed=4, backend=backend)
    assert np.abs(other(labels).astype(int) - exported(labels)).max() > 1
    # a style image's code (encode_style, on torch) goes in as the seed's does
    style = tmp_path / "style.png"
    Image.fromarray(np.full((6, 5, 3), 20, np.uint8)).save(style)
    styled = Translator.load(model, device="cpu", style=str(style), backend=backend)(labels)
    want = Translator.load(model, device="cpu", style=str(style))(labels)
    assert np.abs(styled.astype(int) - want).max() <= 1
    assert np.abs(styled.astype(int) - exported(labels)).max() > 1


@pytest.mark.parametrize(
    ("name", "options"),
    [("oasis", {"ngf": 2, "hidden": 4, "noise_dim": 3}), ("spade", {"ngf": 2, "hidden": 4})],
)
def test_spectral_norm_generators_export_to_onnx(name: str, options: dict, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    spec = GeneratorSpec.declared(name, 5, 3, options)
    torch.manual_seed(0)
    net = spec.build().eval()
    save_generators(tmp_path / "g.safetensors", {"AtoB": (spec, net)})
    loaded = load_model(tmp_path / "g.safetensors")
    # the export checks itself against torch, codes included, at three sizes and two batches
    assert export_generator(loaded, tmp_path / "g.onnx", "onnx").is_file()
    # the weights it baked were a rebuilt copy's: the model's own keep their spectral norm
    assert hasattr(loaded.generators["AtoB"].blocks[0].conv_0, "parametrizations")


def test_convert_seed_writes_one_image_per_map_and_seeds_differ(toy: Path, tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    maps.mkdir()
    for i in range(3):
        Image.fromarray(ids(i), "L").save(maps / f"m{i}.png")
    outputs = {}
    for seed in (1, 2):
        out = tmp_path / f"out{seed}"
        result = CliRunner().invoke(
            main, ["convert", str(toy), str(maps), str(out), "--device", "cpu", "--seed", str(seed)]
        )
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in out.glob("*.png")) == ["m0.png", "m1.png", "m2.png"]
        outputs[seed] = np.asarray(Image.open(out / "m0.png"))
        manifest = json.loads((out / MANIFEST_NAME).read_text())
        assert manifest["options"]["seed"] == seed
    assert outputs[1].shape == (10, 13, 3)
    assert not np.array_equal(outputs[1], outputs[2])
    # a style replaces the seed's noise: the manifest records the style and no seed
    Image.fromarray(np.full((4, 4, 3), 90, np.uint8)).save(tmp_path / "look.png")
    out = tmp_path / "styled"
    args = ["convert", str(toy), str(maps), str(out), "--device", "cpu"]
    result = CliRunner().invoke(main, [*args, "--style", str(tmp_path / "look.png")])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["options"]["style"] == str(tmp_path / "look.png")
    assert manifest["options"]["seed"] is None
    styled = np.asarray(Image.open(out / "m0.png"))
    assert not np.array_equal(styled, outputs[1]) and not np.array_equal(styled, outputs[2])


def test_each_map_gets_noise_of_the_seed_and_its_path_in_full_partial_and_resumed_runs(
    toy: Path, tmp_path: Path
) -> None:
    maps = tmp_path / "maps"
    (maps / "sub").mkdir(parents=True)
    for rel in ("a.png", "b.png", "sub/a.png"):  # one map three times
        Image.fromarray(ids(), "L").save(maps / rel)

    def convert(out: Path, *extra: str) -> dict[str, bytes]:
        args = ["convert", str(toy), str(maps), str(out), "--device", "cpu", "--seed", "3"]
        result = CliRunner().invoke(main, [*args, *extra])
        assert result.exit_code == 0, result.output
        return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.png")}

    full = convert(tmp_path / "full")
    # the same map, three paths: three codes, so three images
    assert len(set(full.values())) == 3
    manifest = json.loads((tmp_path / "full" / MANIFEST_NAME).read_text())
    assert manifest["options"]["seed"] == 3 and "path" in manifest["options"]["noise"]
    # a partial run (one file listed) and a resumed one (an output lost) give the same bytes
    listed = tmp_path / "list.txt"
    listed.write_text("sub/a.png\n")
    assert convert(tmp_path / "part", "--files-from", str(listed)) == {
        "sub/a.png": full["sub/a.png"]
    }
    (tmp_path / "full" / "b.png").unlink()
    assert convert(tmp_path / "full") == full
    # the Translator: a name's code whatever the batch, none given: the seed's for all
    translator = Translator.load(toy, device="cpu", seed=3)
    arrays = [ids(), ids(), ids(1)]
    named = translator.translate_batch(arrays, ["a.png", "b.png", "a.png"])
    expected = np.asarray(Image.open(io.BytesIO(full["a.png"])))
    assert np.array_equal(named[0], expected) and not np.array_equal(named[1], expected)
    assert np.array_equal(translator.translate_batch([ids()], ["a.png"])[0], expected)
    assert np.array_equal(translator(ids()), translator.translate_batch(arrays)[1])
    with pytest.raises(ValueError, match="names: 1 for 3 images"):
        translator.translate_batch(arrays, ["a.png"])


def test_a_video_of_label_maps_converts_and_a_colour_video_is_refused(
    toy: Path, tmp_path: Path
) -> None:
    av = pytest.importorskip("av")
    from translate.conversion.video import VideoError, convert_video

    # 4x4 blocks of one class: the encoder's 2x2 chroma subsampling keeps their colours
    frames = [np.kron(ids(i, (4, 6)), np.ones((4, 4), np.uint8)) for i in range(3)]
    source = tmp_path / "labels.mkv"
    with av.open(str(source), "w") as sink:
        stream = sink.add_stream("ffv1", rate=5)
        stream.width, stream.height, stream.pix_fmt = 24, 16, "gray"
        for frame in frames:
            sink.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="gray")))
        sink.mux(stream.encode())
    translator = Translator.load(toy, device="cpu")
    assert convert_video(source, tmp_path / "out.mkv", translator, codec="ffv1") == 3
    with av.open(str(tmp_path / "out.mkv")) as result:
        first = next(result.decode(video=0)).to_ndarray(format="rgb24")
    expected = translator(frames[0])
    # the translator's output, but for YUV rounding; another map's is far off
    assert np.abs(first.astype(int) - expected).mean() < 6
    assert np.abs(first.astype(int) - translator(frames[1])).mean() > 10

    colour = tmp_path / "colour.mkv"
    with av.open(str(colour), "w") as sink:
        stream = sink.add_stream("ffv1", rate=5)
        stream.width, stream.height, stream.pix_fmt = 24, 16, "yuv420p"
        sink.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((16, 24, 3), np.uint8))))
        sink.mux(stream.encode())
    with pytest.raises(VideoError, match="gray or palette frames.*frames are yuv420p"):
        convert_video(colour, tmp_path / "colour_out.mkv", translator, codec="ffv1")
    assert not (tmp_path / "colour_out.mkv").exists()


@pytest.fixture(scope="module")
def client(toy: Path):  # noqa: ANN201 (a TestClient; fastapi is optional)
    pytest.importorskip("fastapi", reason="translate serve needs the serve extra")
    from fastapi.testclient import TestClient

    from translate.apps.serve.app import create_app
    from translate.apps.serve.models import Models

    models = Models([str(toy), "demo"], device="cpu")
    return TestClient(create_app(models), headers={"content-type": "image/png"})


def test_serve_lists_a_label_model_with_its_classes_and_noise(client, toy: Path) -> None:
    listed = {m["name"]: m for m in client.get("/api/models").json()["models"]}
    info = listed[str(toy)]
    assert info["input_kind"] == "labels" and info["noise_dim"] == 3
    # recorded names, default colours (the file records none)
    assert [c["name"] for c in info["classes"]] == ["sea", "land", "hill", "ice"]
    assert len({tuple(c["color"]) for c in info["classes"]}) == CLASSES
    assert listed["demo"]["input_kind"] == "image" and listed["demo"]["classes"] is None


def test_paint_endpoint_answers_the_image_and_refuses_bad_maps(client, toy: Path) -> None:
    model = str(toy)
    labels = ids(size=(32, 32))
    answer = client.post(
        "/api/paint", params={"model": model, "seed": 5}, content=png_bytes(labels)
    )
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert float(answer.headers["x-model-ms"]) >= 0
    image = np.asarray(Image.open(io.BytesIO(answer.content)))
    expected = Translator.load(toy, device="cpu", seed=5)(labels)
    assert np.array_equal(image, expected)
    # the page's JPEG: the same image but for the encoding's small loss (on regions of a
    # class, as painted: JPEG blurs a pixel-by-pixel pattern more)
    regions = np.kron(ids(size=(4, 4)), np.ones((8, 8), np.uint8))
    jpeg = client.post(
        "/api/paint",
        params={"model": model, "seed": 5, "format": "jpeg"},
        content=png_bytes(regions),
    )
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    lossy = np.asarray(Image.open(io.BytesIO(jpeg.content))).astype(int)
    exact = Translator.load(toy, device="cpu", seed=5)(regions)
    assert lossy.shape == exact.shape and np.abs(lossy - exact).mean() < 3
    webp = client.post(
        "/api/paint", params={"model": model, "format": "webp"}, content=png_bytes(labels)
    )
    assert webp.status_code == 400 and "'format'" in webp.json()["error"]
    # a palette upload through /api/translate is the same map: indices, not colours
    palette = Image.fromarray(labels, "P")
    palette.putpalette([v for i in range(256) for v in (255 - i, 3 * i % 256, 7)])
    buffer = io.BytesIO()
    palette.save(buffer, "PNG")
    other = client.post(
        "/api/translate",
        params={"model": model, "name": "m.png", "seed": 5},
        content=buffer.getvalue(),
    )
    assert other.status_code == 200
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(other.content))), expected)
    # its ids back as gray for the page's canvas
    back = client.post("/api/labels", params={"model": model}, content=buffer.getvalue())
    assert back.status_code == 200
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(back.content))), labels)

    bad = labels.copy()
    bad[3, 4] = 9
    refused = client.post("/api/paint", params={"model": model}, content=png_bytes(bad))
    assert refused.status_code == 422
    assert refused.json()["error"] == (
        "painted label map: class id 9 is not below the model's 4 classes (ids 0 to 3)"
    )
    colour = client.post(
        "/api/paint", params={"model": model}, content=png_bytes(np.zeros((8, 8, 3), np.uint8))
    )
    assert colour.status_code == 422 and "this image is RGB" in colour.json()["error"]
    garbage = client.post("/api/paint", params={"model": model}, content=b"not a png")
    assert garbage.status_code == 422 and "not a readable image" in garbage.json()["error"]
    image_model = client.post("/api/paint", params={"model": "demo"}, content=png_bytes(labels))
    assert image_model.status_code == 400 and "nothing to paint" in image_model.json()["error"]
    text = client.post(
        "/api/paint", params={"model": model}, content=b"x", headers={"content-type": "text/plain"}
    )
    assert text.status_code == 415
    seed = client.post("/api/paint", params={"model": model, "seed": "x"}, content=b"")
    assert seed.status_code == 400 and "seed" in seed.json()["error"]


def test_the_paint_benchmark_times_round_trips(toy: Path) -> None:
    pytest.importorskip("fastapi", reason="translate serve needs the serve extra")
    with tool_module("paint_benchmark") as tool:
        maps = tool.stroke_maps(32, CLASSES, 3)
        # each map is the one before with one more stroke
        arrays = [np.asarray(Image.open(io.BytesIO(m))) for m in maps]
        assert arrays[0].max() < CLASSES and not np.array_equal(arrays[0], arrays[2])
        result = tool.run(str(toy), 32, 3)
        assert result["requests"] == 3 and 0 < result["p50_ms"] <= result["max_ms"]
        assert result["parameters"] == count_parameters(load_model(toy).generators["AtoB"])
        # the default model: a spade of the demo's size, within 1% of its parameters
        demo = load_model("demo").generators["AtoB"]
        printed = tool.main(["--size", "32", "--requests", "2", "--format", "png"])
    assert abs(printed["parameters"] / count_parameters(demo) - 1) < 0.01
    assert printed["format"] == "png"
