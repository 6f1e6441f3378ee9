"""Community checkpoints through spandrel: spandrel's own architectures, built here with
random weights (nothing downloaded), load through translate and run as spandrel runs them."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import save_file

spandrel = pytest.importorskip("spandrel")

from conftest import NATIVE_BF16  # noqa: E402
from spandrel.architectures.Compact import Compact  # noqa: E402
from spandrel.architectures.DnCNN import DnCNN  # noqa: E402
from spandrel.architectures.ESRGAN import ESRGAN  # noqa: E402
from spandrel.architectures.SwinIR import SwinIR  # noqa: E402

from translate import Translator  # noqa: E402
from translate.cli import main  # noqa: E402
from translate.core.extras import MissingExtra  # noqa: E402
from translate.core.runtime import resolve_precision  # noqa: E402
from translate.core.torch_file import load as torch_load  # noqa: E402
from translate.models import community  # noqa: E402
from translate.models.loading import load_model  # noqa: E402

# Tiny configurations of each family, with the scale and channels spandrel must report.
ARCHES = {
    "ESRGAN": (lambda: ESRGAN(num_filters=8, num_blocks=1, scale=4), 4, 3),
    "Compact": (lambda: Compact(num_feat=8, num_conv=2, upscale=4), 4, 3),
    "SwinIR": (
        lambda: SwinIR(
            img_size=16,
            embed_dim=12,
            depths=[1],
            num_heads=[2],
            window_size=4,
            mlp_ratio=2,
            upscale=2,
            upsampler="pixelshuffledirect",
        ),
        2,
        3,
    ),  # fmt: skip
    "DnCNN": (lambda: DnCNN(in_nc=1, out_nc=1, nc=8, nb=4), 1, 1),
}


def _save(net: torch.nn.Module, path: Path) -> Path:
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def esrgan(tmp_path_factory) -> Path:
    """A state dict saved from spandrel's own ESRGAN class, as a community file is."""
    torch.manual_seed(0)
    return _save(
        ESRGAN(num_filters=8, num_blocks=1, scale=4), tmp_path_factory.mktemp("m") / "ESRGAN.pth"
    )


@pytest.fixture(scope="module")
def swinir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return _save(ARCHES["SwinIR"][0](), tmp_path_factory.mktemp("m") / "swinir.safetensors")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_spandrel_architectures_load_with_their_geometry_and_match_spandrel(arch, suffix, tmp_path):
    build, scale, channels = ARCHES[arch]
    torch.manual_seed(0)
    net = build()
    # Weights far from their initialisation (DnCNN's batch norm statistics included).
    state = {
        k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v
        for k, v in net.state_dict().items()
    }
    if arch == "DnCNN":
        state = {k: v.abs() + 0.5 if k.endswith("running_var") else v for k, v in state.items()}
    net.load_state_dict(state)
    path = _save(net, tmp_path / f"model{suffix}")
    model = load_model(path)
    spec = model.specs["AtoB"]
    assert (spec.name, spec.scale, spec.in_channels, spec.out_channels) == (
        f"spandrel:{arch}", scale, channels, channels,
    )  # fmt: skip
    assert model.training["architecture"] == spandrel.MAIN_REGISTRY[arch].architecture.name
    expected = spandrel.ModelLoader().load_from_state_dict(net.state_dict()).eval()
    x = torch.rand(2, channels, 20, 30)
    got = Translator(model, precision="fp32", batch_size=2).translate_tensor(x)
    want = torch.cat([expected(image[None]) for image in x])
    assert got.shape == (2, channels, 20 * scale, 30 * scale)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def _image(folder: Path, size=(30, 20)) -> Path:
    folder.mkdir()
    array = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(array).save(folder / "a.png")
    return folder


@pytest.mark.parametrize("tile", [None, 16])
def test_convert_esrgan_pth_gives_4x_images_whole_and_in_tiles(esrgan, tmp_path, tile):
    src = _image(tmp_path / "in")
    # As a user types it: `translate convert ESRGAN.pth IN OUT`, precision auto.
    args = ["convert", str(esrgan), str(src), str(tmp_path / "out")]
    result = CliRunner().invoke(main, args + (["--tile", str(tile)] if tile else []))
    assert result.exit_code == 0, result.output
    out = np.asarray(Image.open(tmp_path / "out" / "a.png"))
    assert out.shape == (80, 120, 3)
    whole = Translator.load(esrgan)(np.asarray(Image.open(src / "a.png")))
    if tile is None:
        np.testing.assert_array_equal(out, whole)
    else:  # tiles of 16 input pixels, blended: close to the whole image, not equal to it
        assert np.abs(out.astype(int) - whole).mean() < 8


def test_info_names_the_architecture_scale_and_what_it_runs_in(swinir):
    result = CliRunner().invoke(main, ["info", str(swinir), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    generator, training = info["generators"]["AtoB"], info["training"]
    assert (generator["architecture"], generator["output_scale"]) == ("spandrel:SwinIR", 2)
    assert (training["architecture"], training["purpose"]) == ("SwinIR", "SR")
    assert "12dim" in training["tags"]
    assert training["size_requirements"]["minimum"] == 16
    assert training["precisions"] == ["fp32", "bf16"]  # spandrel: SwinIR has no fp16


def test_auto_precision_keeps_off_what_spandrel_says_a_model_cannot_run(swinir, esrgan, cpu):
    cpu(NATIVE_BF16)  # auto: bf16 on this CPU
    assert Translator.load(esrgan).precision.name == "bf16"
    model = load_model(swinir)
    model.generators["AtoB"].precisions = ("fp32",)  # as spandrel declares e.g. AuraSR
    assert Translator(model).precision.name == "fp32"
    with pytest.raises(ValueError, match="--precision: bf16 is not supported by this model"):
        Translator(model, precision="bf16")
    # SwinIR has bf16 but no fp16: auto on a GPU (fp16 there) falls back to fp32.
    supported = load_model(swinir).generators["AtoB"].precisions
    assert resolve_precision("auto", torch.device("cuda"), supported=supported).name == "fp32"
    assert resolve_precision("auto", torch.device("cuda")).name == "fp16"


class _Hostile:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("name", ["ESRGAN.pth", "model.ckpt"])
def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path, name):
    marker = tmp_path / "ran"
    path = tmp_path / name
    torch.save(
        {"params_ema": ESRGAN(num_filters=8, num_blocks=1).state_dict(), "x": _Hostile(marker)},
        path,
    )
    with pytest.raises(ValueError, match="refused: would run code"):
        load_model(path)
    result = CliRunner().invoke(
        main, ["convert", str(path), str(_image(tmp_path / "in")), str(tmp_path / "o")]
    )
    assert result.exit_code == 1 and "refused: would run code" in result.output
    assert not marker.exists()


def test_spandrels_wrapped_state_dicts_load(tmp_path):
    """Real-ESRGAN's releases nest the weights under ``params_ema``."""
    torch.manual_seed(0)
    net = Compact(num_feat=8, num_conv=2, upscale=4)
    path = tmp_path / "RealESRGAN_x4plus.pth"
    torch.save({"params_ema": net.state_dict()}, path)
    assert load_model(path).training["architecture"] == "RealESRGAN Compact"


def test_a_file_nobody_recognises_names_what_was_tried(tmp_path, monkeypatch):
    path = tmp_path / "mystery.pth"
    torch.save({"body.weight": torch.zeros(8, 3, 3, 3), "body.bias": torch.zeros(8)}, path)
    with pytest.raises(ValueError) as error:
        load_model(path)
    message = str(error.value)
    assert message.startswith(f"{path}: not a pix2pix/CycleGAN reference generator (")
    assert "not an architecture spandrel" in message and "\n" not in message
    monkeypatch.setitem(sys.modules, "spandrel", None)  # as without the extra
    with pytest.raises(
        MissingExtra, match=r'reference generator .* pip install "translate\[spandrel\]"'
    ):
        load_model(path)


def test_a_safetensors_file_without_translate_metadata_goes_to_spandrel(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2, 2)}, str(path))
    with pytest.raises(ValueError, match="not a translate generator file .*not a.* spandrel"):
        load_model(path)


def test_restrictively_licensed_architectures_need_the_opt_in(tmp_path, monkeypatch):
    pytest.importorskip("spandrel_extra_arches")
    from spandrel_extra_arches.architectures.Restormer import Restormer

    torch.manual_seed(0)
    net = Restormer(dim=8, num_blocks=[1, 1, 1, 1], heads=[1, 1, 1, 1], num_refinement_blocks=1)
    path = _save(net, tmp_path / "restormer.pth")
    monkeypatch.delenv(community.OPT_IN, raising=False)
    with pytest.raises(
        ValueError, match=f"a Restormer checkpoint.*restrictive.*set {community.OPT_IN}=1"
    ):
        load_model(path)
    monkeypatch.setenv(community.OPT_IN, "1")
    model = load_model(path)
    assert model.specs["AtoB"].name == "spandrel:Restormer"
    assert model.training["registry"].startswith("spandrel_extra_arches")
    assert model.generators["AtoB"].size_multiple == 8


def test_the_checkpoint_is_read_by_the_safe_loader_only(esrgan, monkeypatch):
    """spandrel's own file loader is never used; translate's torch_file reads the file."""
    calls = []
    monkeypatch.setattr(
        community.torch_file, "load", lambda path: calls.append(path) or torch_load(path)
    )
    monkeypatch.setattr(spandrel.ModelLoader, "load_from_file", None)
    monkeypatch.setattr(spandrel.ModelLoader, "load_state_dict_from_file", None)
    assert load_model(esrgan).specs["AtoB"].scale == 4


def test_a_video_comes_out_at_4x_with_its_audio(esrgan, tmp_path):
    pytest.importorskip("av")
    from test_video import SIDE, _probe, make_clip

    clip = make_clip(tmp_path / "clip.mp4", frames=2)
    out = tmp_path / "clip_4x.mp4"
    result = CliRunner().invoke(
        main, ["convert", str(esrgan), str(clip), str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    probe = _probe(out)
    assert [f.shape for f in probe["frames"]] == [(4 * SIDE, 4 * SIDE, 3)] * 2
    assert probe["audio"] == _probe(clip)["audio"]


def test_an_upload_to_serve_comes_back_at_4x(esrgan):
    pytest.importorskip("fastapi")
    import io

    from fastapi.testclient import TestClient

    from translate.apps.serve.app import create_app
    from translate.apps.serve.models import Models

    client = TestClient(create_app(Models([str(esrgan)], device="cpu")))
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((34, 40, 3), np.uint8)).save(buffer, "PNG")
    for query in ("", "&tile=32"):
        response = client.post(
            f"/api/translate?model={esrgan}&name=a.png{query}",
            content=buffer.getvalue(),
            headers={"content-type": "application/octet-stream"},
        )
        assert response.status_code == 200, response.text
        assert Image.open(io.BytesIO(response.content)).size == (160, 136)


@pytest.mark.slow
def test_onnx_export_runs_like_spandrel_and_torchscript_says_to_use_onnx(esrgan, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    result = CliRunner().invoke(main, ["export", str(esrgan), str(tmp_path / "m.onnx")])
    assert result.exit_code == 0, result.output
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    x = torch.rand(1, 3, 20, 30)
    [got] = session.run(None, {session.get_inputs()[0].name: (x * 2 - 1).numpy()})
    expected = spandrel.ModelLoader().load_from_state_dict(torch.load(esrgan)).eval()
    np.testing.assert_allclose((got + 1) / 2, expected(x).numpy(), atol=1e-4)
    result = CliRunner().invoke(main, ["export", str(esrgan), str(tmp_path / "m.pt")])
    assert result.exit_code == 1
    assert "spandrel:ESRGAN cannot be compiled to TorchScript" in result.output
    assert "--format onnx" in result.output and not (tmp_path / "m.pt").exists()


def test_evaluate_scores_a_4x_model_against_4x_targets(esrgan, tmp_path):
    rng = np.random.default_rng(0)
    for side in ("A", "B"):
        (tmp_path / "data" / "val" / side).mkdir(parents=True)
    inputs = [rng.integers(0, 256, (20, 32, 3), dtype=np.uint8) for _ in range(2)]
    targets = [rng.integers(0, 256, (80, 128, 3), dtype=np.uint8) for _ in range(2)]
    for i, (a, b) in enumerate(zip(inputs, targets, strict=True)):
        Image.fromarray(a).save(tmp_path / "data" / "val" / "A" / f"{i}.png")
        Image.fromarray(b).save(tmp_path / "data" / "val" / "B" / f"{i}.png")
    args = ["evaluate", "--model", str(esrgan), "--data", str(tmp_path / "data")]
    result = CliRunner().invoke(main, [*args, "--precision", "fp32", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    translator = Translator.load(esrgan, precision="fp32", value_range=(-1.0, 1.0))
    outputs = [translator(a.astype(np.float32) / 127.5 - 1) for a in inputs]
    l1 = np.mean(
        [np.abs(o - (b / 127.5 - 1)).mean() for o, b in zip(outputs, targets, strict=True)]
    )
    assert scores["images"] == 2
    assert scores["l1"] == pytest.approx(l1, abs=1e-4)
