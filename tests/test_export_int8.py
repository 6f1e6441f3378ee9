"""`translate export --int8`: onnxruntime's static quantizer (QDQ) on calibration images the
user gives, the PSNR kept against the fp32 graph reported, and a model under --min-psnr
refused with nothing written."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from translate.cli import main
from translate.core.metrics import psnr
from translate.inference import quantize
from translate.inference.quantize import MIN_PSNR, calibration_inputs, export_int8
from translate.models.loading import load_model

onnxruntime = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


@pytest.fixture
def calibration(tmp_path):
    """Three small smooth images (one of another size), as photos are rather than noise."""
    folder = tmp_path / "calibration"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i, (h, w) in enumerate(((16, 20), (16, 20), (12, 24))):
        ramp = np.linspace(0, 200, h * w * 3).reshape(h, w, 3)
        pixels = ramp + rng.integers(0, 40, (h, w, 3))
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def _export(model_file, out, calibration, *more):
    """The command's exit code and its lines, less the warnings torch's ONNX exporter
    gives under pytest."""
    args = ["export", str(model_file), str(out), "--int8", "--calibrate", str(calibration)]
    result = CliRunner().invoke(main, [*args, *more])
    lines = [line for line in result.output.splitlines() if not line.startswith("warning:")]
    return result.exit_code, lines


def test_an_int8_model_loads_in_onnxruntime_close_to_fp32(
    tiny_generator_file, calibration, tmp_path
):
    out = tmp_path / "g.int8.onnx"
    code, lines = _export(tiny_generator_file, out, calibration)
    assert code == 0, lines
    [line] = lines
    assert line.startswith(f"wrote {out}: int8, ")
    assert "dB PSNR against fp32 on 3 calibration images" in line

    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ, not the fp32 graph
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    generator = load_model(str(tiny_generator_file)).generators["AtoB"].eval()
    # Dynamic sizes: two calibration images cropped to a size it never had, batched.
    x = torch.from_numpy(np.concatenate(calibration_inputs(calibration, 3)[:2]))[..., :12, :16]
    got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    with torch.no_grad():
        expected = generator(x)
    assert got.shape == expected.shape == (2, 3, 12, 16)
    assert not torch.equal(got, expected)  # quantized,
    assert psnr(got, expected) > 35  # and still the same model


def test_the_quality_reported_is_the_int8_graphs_against_fp32s(
    tiny_generator_file, calibration, tmp_path
):
    quality = export_int8(load_model(str(tiny_generator_file)), tmp_path / "g.onnx", calibration)
    assert quality.images == 3
    assert MIN_PSNR <= quality.lowest <= quality.psnr < 100  # lossy, but above the default


def test_a_model_under_min_psnr_is_refused_and_nothing_written(
    tiny_generator_file, calibration, tmp_path
):
    out = tmp_path / "g.onnx"
    out.write_bytes(b"previous export")
    code, lines = _export(tiny_generator_file, out, calibration, "--min-psnr", "200")
    assert code != 0
    [line] = lines
    assert line.startswith(f"Error: {out}: the int8 model keeps ")
    assert "under --min-psnr 200; nothing written" in line
    assert out.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calibration", "g.onnx"]


def test_the_default_threshold_is_40_db(tiny_generator_file, calibration, tmp_path, monkeypatch):
    monkeypatch.setattr(quantize, "psnr", lambda got, expected: 39.9)
    code, [line] = _export(tiny_generator_file, tmp_path / "g.onnx", calibration)
    assert code != 0
    assert "39.9 dB PSNR" in line and "under --min-psnr 40;" in line
    assert not (tmp_path / "g.onnx").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["g.onnx", "--int8"], "--int8 needs --calibrate FOLDER"),
        (["g.pt", "--int8", "--calibrate", "CAL"], "--int8 writes ONNX"),
        (["g.onnx", "--calibrate", "CAL"], "--calibrate and --min-psnr only apply to --int8"),
    ],
)
def test_options_that_do_not_go_together(tiny_generator_file, calibration, tmp_path, args, message):
    args = [str(calibration) if a == "CAL" else a for a in args]
    args[0] = str(tmp_path / args[0])
    result = CliRunner().invoke(main, ["export", str(tiny_generator_file), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not list(tmp_path.glob("g.*"))


def test_calibration_folders_it_cannot_use(tmp_path):
    with pytest.raises(NotADirectoryError, match="--calibrate .*missing: not a folder"):
        calibration_inputs(tmp_path / "missing", 3)
    with pytest.raises(ValueError, match="no images found"):
        calibration_inputs(tmp_path, 3)
    with pytest.raises(ValueError, match="the model takes 5 channels"):
        calibration_inputs(tmp_path, 5)


def test_calibration_images_are_read_as_the_graph_takes_them(calibration):
    inputs = calibration_inputs(calibration, 1)
    assert [x.shape for x in inputs] == [(1, 1, 16, 20), (1, 1, 16, 20), (1, 1, 12, 24)]
    assert all(x.dtype == np.float32 and x.min() >= -1 and x.max() <= 1 for x in inputs)
