"""`convert --precision int8`: the generator's ONNX graph quantized on first use with the
first images of --calibrate (convert's default: its input folder), by onnxruntime's
quantizer for onnxruntime and NNCF for openvino, cached by the weights' and the
calibration's hashes with the PSNR it kept, refused under --min-psnr; and ``--backend
auto``'s rule."""

import importlib.util
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from translate.cli import main
from translate.conversion.manifest import MANIFEST_NAME
from translate.core.metrics import psnr
from translate.inference import backends
from translate.inference.backends import int8_cache_path, resolve_backend
from translate.inference.options import OptionError, TranslatorOptions
from translate.inference.translator import Translator
from translate.networks.eval_mode import EvalMode

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

pytestmark = pytest.mark.usefixtures("own_home")  # each test its own empty cache

# openvino's int8 model is NNCF's: its tests need both packages of the openvino extra.
INT8_BACKENDS = [
    "onnxruntime",
    pytest.param(
        "openvino",
        marks=pytest.mark.skipif(
            not all(importlib.util.find_spec(name) for name in ("openvino", "nncf")),
            reason="needs the openvino extra (openvino, nncf)",
        ),
    ),
]


@pytest.fixture
def images(tmp_path):
    """Four small smooth images (photos are smoother than noise)."""
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(4):
        ramp = np.linspace(0, 200, 24 * 32 * 3).reshape(24, 32, 3)
        pixels = ramp + rng.integers(0, 40, (24, 32, 3))
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def _convert(model, src, dst, *more):
    """The exit code and the output lines, less the ONNX exporter's warnings."""
    args = ["convert", str(model), str(src), str(dst), "--no-progress", *more]
    result = CliRunner().invoke(main, args)
    lines = [line for line in result.output.splitlines() if not line.startswith("warning:")]
    return result.exit_code, lines


def _outputs(folder):
    return torch.stack(
        [torch.from_numpy(np.array(Image.open(p))).float() for p in sorted(folder.glob("*.png"))]
    )


def _int8_graphs(tmp_path, backend="onnxruntime"):
    """The int8 models in the cache: onnxruntime's QDQ graphs or NNCF's OpenVINO models."""
    if backend == "openvino":
        return sorted((tmp_path / "home" / "openvino").glob("*-int8-*-nncf/model.xml"))
    return sorted((tmp_path / "home" / "onnx").glob("*-int8-*.onnx"))


@pytest.mark.slow
@pytest.mark.parametrize("backend", INT8_BACKENDS)
def test_int8_demo_outputs_stay_within_the_threshold_of_fp32(images, tmp_path, backend):
    """The refusal threshold is the tolerance: an int8 model that kept less than 40 dB
    (an RMS error of 2.5 grey levels) against fp32 on the calibration images is not run,
    and here the images converted are the calibration images themselves."""
    code, lines = _convert("demo", images, tmp_path / "fp32", "--precision", "fp32")
    assert code == 0, lines
    code, lines = _convert(
        "demo", images, tmp_path / "int8", "--precision", "int8", "--backend", backend
    )
    assert code == 0, lines
    assert any(line.startswith("int8 model: ") for line in lines), lines
    int8, fp32 = _outputs(tmp_path / "int8"), _outputs(tmp_path / "fp32")
    assert int8.shape == fp32.shape == (4, 24, 32, 3)
    assert not torch.equal(int8, fp32)  # quantized,
    assert psnr(int8 / 127.5 - 1, fp32 / 127.5 - 1) >= 40  # and still the same model
    options = json.loads((tmp_path / "int8" / MANIFEST_NAME).read_text())["options"]
    assert (options["precision"], options["backend"]) == ("int8", backend)
    assert options["calibrate"]["images"] == 4 and options["calibrate"]["psnr"] >= 40


@pytest.mark.parametrize("backend", INT8_BACKENDS)
def test_the_int8_graph_is_cached_and_its_quality_checked_again(
    tiny_generator_file, images, tmp_path, backend
):
    args = ("--precision", "int8", "--backend", backend, "--calibrate", str(images))
    code, lines = _convert(tiny_generator_file, images, tmp_path / "a", *args)
    assert code == 0, lines
    quantizer = {"onnxruntime": "the ONNX graph to int8", "openvino": "the model to int8 with NNCF"}
    assert any(line.startswith(f"quantizing {quantizer[backend]}, once") for line in lines)
    assert not any("Statistics collection" in line for line in lines)  # NNCF's progress bars
    [graph] = _int8_graphs(tmp_path, backend)
    assert [p.name for p in graph.parent.parent.iterdir() if p.name.startswith(".")] == []
    made = graph.stat().st_mtime_ns
    code, lines = _convert(tiny_generator_file, images, tmp_path / "b", *args)
    assert code == 0, lines
    assert not any(line.startswith("quantizing") for line in lines)  # reused,
    assert _int8_graphs(tmp_path, backend) == [graph] and graph.stat().st_mtime_ns == made
    assert torch.equal(_outputs(tmp_path / "a"), _outputs(tmp_path / "b"))
    # and a stricter threshold refuses the cached graph by its recorded quality.
    code, lines = _convert(tiny_generator_file, images, tmp_path / "c", *args, "--min-psnr", "200")
    assert code != 0
    assert any("under --min-psnr 200; not used" in line for line in lines), lines
    # Other calibration images make another graph.
    (images / "4.png").write_bytes((images / "0.png").read_bytes())
    code, lines = _convert(tiny_generator_file, images, tmp_path / "d", *args)
    assert code == 0, lines
    assert len(_int8_graphs(tmp_path, backend)) == 2


@pytest.mark.parametrize("backend", INT8_BACKENDS)
def test_an_int8_model_under_min_psnr_is_refused_and_not_cached(
    tiny_generator_file, images, tmp_path, backend
):
    code, lines = _convert(
        tiny_generator_file, images, tmp_path / "out", "--precision", "int8",
        "--backend", backend, "--min-psnr", "200",
    )  # fmt: skip
    assert code != 0
    assert any(f"--calibrate {images}: the int8 model keeps " in line for line in lines), lines
    assert any("under --min-psnr 200; nothing written" in line for line in lines)
    assert _int8_graphs(tmp_path, backend) == []
    assert not list((tmp_path / "out").glob("*.png"))


def test_each_backends_int8_model_is_named_by_the_weights_and_the_calibration(scaled_model):
    def cached(backend, inputs):
        return int8_cache_path(scaled_model, "AtoB", EvalMode(), inputs, backend)

    calibration = [np.zeros((1, 4, 8, 8), np.float32)]
    ort, ov = cached("onnxruntime", calibration), cached("openvino", calibration)
    # onnxruntime's QDQ graph in the ONNX cache; NNCF's model in OpenVINO's under a name of
    # its own (not that of the folder the QDQ graph was once converted into for OpenVINO).
    assert (ort.parent.name, ort.suffix) == ("onnx", ".onnx")
    assert (ov.parent.parent.name, ov.name) == ("openvino", "model.xml")
    assert ov.parent.name == f"{ort.stem}-nncf"
    other = cached("openvino", [np.ones((1, 4, 8, 8), np.float32)])
    assert other != ov and other.parent.name.split("-int8-")[0] == ort.stem.split("-int8-")[0]


def test_int8_options_that_do_not_fit_are_refused_in_one_line():
    with pytest.raises(ValueError, match="--precision int8 runs a quantized ONNX graph"):
        resolve_backend("torch", "cpu", "int8", EvalMode())
    with pytest.raises(OptionError, match="calibrate is for precision int8"):
        TranslatorOptions(calibrate="somewhere")


def test_auto_runs_onnxruntime_for_fp32_and_int8_on_the_cpu_else_torch(monkeypatch):
    def backend(precision="fp32", mode=EvalMode(), device="cpu"):
        return resolve_backend("auto", device, precision, mode)[0]

    assert backend() == backend(precision="int8") == "onnxruntime"
    assert backend(mode=EvalMode(dropout=True)) == "torch"  # onnxruntime cannot seed it
    monkeypatch.setattr(backends, "auto_precision", lambda device, use: "bf16")
    assert backend(precision="auto") == "torch"  # a native-bf16 CPU: torch's autocast
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: None)
    assert backend() == "torch"  # onnxruntime not installed


def test_auto_runs_torch_when_the_model_does_not_export(scaled_model, monkeypatch, capsys):
    def fails(*args, **kwargs):
        raise ValueError("cannot export this")

    monkeypatch.setattr(backends, "export_generator", fails)
    translator = Translator(scaled_model, backend="auto", device="cpu", precision="fp32")
    assert translator.backend == "torch"
    assert "--backend auto: running on torch (cannot export this)" in capsys.readouterr().err
    with pytest.raises(ValueError, match="cannot export this"):  # asked for by name: an error
        Translator(scaled_model, backend="onnxruntime")
