"""`translate export` and `translate info` as a user runs them (convert: test_convert.py)."""

import json
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from translate import Translator
from translate.cli import main
from translate.data.images import write_image
from translate.models.model_file import GeneratorSpec, save_generators
from translate.networks import count_parameters


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "g.safetensors"
    spec = GeneratorSpec("unet_128", 1, 3, {"ngf": 4, "num_downs": 3})
    net = spec.build().eval()
    save_generators(path, {"AtoB": (spec, net)}, training={"model": "pix2pix", "epochs": 3})
    return path, net


def test_info_prints_architecture_parameters_and_training(model):
    path, net = model
    result = CliRunner().invoke(main, ["info", str(path)])
    assert result.exit_code == 0, result.output
    assert "unet_128" in result.output and f"parameters: {count_parameters(net):,}" in result.output
    assert "epochs: 3" in result.output

    as_json = CliRunner().invoke(main, ["info", str(path), "--json"])
    described = json.loads(as_json.output)
    assert described["generators"]["AtoB"]["parameters"] == count_parameters(net)
    assert described["generators"]["AtoB"]["input"]["channels"] == 1


def test_export_torchscript_matches_pytorch(model, tmp_path):
    path, net = model
    out = tmp_path / "g.pt"
    result = CliRunner().invoke(main, ["export", str(path), "--format", "torchscript", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output
    x = torch.rand(2, 1, 24, 40) * 2 - 1  # another batch and shape than any export check
    with torch.inference_mode():
        assert torch.allclose(torch.jit.load(str(out))(x), net(x), atol=1e-4)


def test_model_errors_are_one_line_not_a_traceback(model, tmp_path):
    path, _ = model
    arch = CliRunner().invoke(main, ["info", str(path), "--arch", "resnet_9blocks"])
    assert arch.exit_code == 1 and "--arch" in arch.output
    assert "Traceback" not in arch.output
    opset = CliRunner().invoke(
        main, ["export", str(path), "--format", "torchscript", "--opset", "17", str(tmp_path / "x")]
    )
    assert opset.exit_code == 1 and "--opset" in opset.output
    missing = CliRunner().invoke(main, ["info", str(tmp_path / "missing.safetensors")])
    assert missing.exit_code == 1 and "missing.safetensors" in missing.output


def test_info_on_a_malformed_generator_file_is_one_line(model, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path, _ = model
    with safe_open(str(path), framework="pt") as f:
        raw = f.metadata()
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(path)), str(bad), {k: v for k, v in raw.items() if k != "training"})
    result = CliRunner().invoke(main, ["info", str(bad)])
    assert result.exit_code == 1
    assert result.output == f"Error: {bad}: training: missing from the metadata\n"


def test_size_with_tile_is_refused(model, tmp_path):
    path, _ = model
    (tmp_path / "in").mkdir()
    args = ["convert", str(path), str(tmp_path / "in"), str(tmp_path / "out")]
    result = CliRunner().invoke(main, [*args, "--size", "64", "--tile", "32"])
    assert result.exit_code == 2 and "--size and --tile exclude each other" in result.output
    with pytest.raises(ValueError, match="size and tile exclude each other"):
        Translator.load(path, device="cpu", size=64, tile=32)


def test_a_small_tile_takes_an_overlap_that_fits_and_a_given_one_is_named(model, tmp_path):
    """Without --overlap a tile of 8 gets a quarter of it (2), not a default of 32 that only
    fits larger tiles; an --overlap that does not fit names both options."""
    path, _ = model
    write_image(tmp_path / "in" / "a.png", np.zeros((20, 24, 3), np.uint8))
    args = ["convert", str(path), str(tmp_path / "in"), str(tmp_path / "out"), "--tile", "8"]
    result = CliRunner().invoke(main, [*args, "--precision", "fp32", "--no-progress"])
    assert result.exit_code == 0 and "converted 1" in result.output, result.output
    manifest = json.loads((tmp_path / "out" / "translate-convert.json").read_text())
    assert (manifest["options"]["tile"], manifest["options"]["overlap"]) == (8, 2)
    assert Translator.load(path, device="cpu", tile=512).overlap == 32
    refused = CliRunner().invoke(main, [*args, "--overlap", "8"])
    assert refused.exit_code == 2, refused.output
    assert "--overlap 8 must be less than --tile 8" in refused.output


@pytest.mark.parametrize(("name", "fmt"), [("g.pt", "torchscript"), ("g.onnx", "onnx")])
def test_export_takes_the_format_from_the_suffix(model, tmp_path, name, fmt):
    path, net = model
    out = tmp_path / name
    result = CliRunner().invoke(main, ["export", str(path), str(out)])
    assert result.exit_code == 0 and out.is_file(), result.output
    if fmt == "torchscript":
        x = torch.rand(1, 1, 32, 32) * 2 - 1
        assert torch.allclose(torch.jit.load(str(out))(x), net(x), atol=1e-4)
    else:
        assert out.read_bytes()[:2] != b"PK"  # an ONNX protobuf, not a TorchScript zip
    unknown = CliRunner().invoke(main, ["export", str(path), str(tmp_path / "g.bin")])
    assert unknown.exit_code == 2 and "give --format torchscript or onnx" in unknown.output


def test_missing_onnx_extra_is_one_line(model, tmp_path, monkeypatch):
    path, _ = model
    monkeypatch.setitem(sys.modules, "onnx", None)
    result = CliRunner().invoke(main, ["export", str(path), str(tmp_path / "g.onnx")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert 'needs the onnx extra (onnx is missing): pip install "translate[onnx]"' in result.output
    assert not (tmp_path / "g.onnx").exists()


def test_convert_format_jpeg_means_jpg(model, tmp_path):
    path, _ = model
    write_image(tmp_path / "in" / "a.png", np.full((16, 16, 3), 128, np.uint8))
    args = ["convert", str(path), str(tmp_path / "in"), str(tmp_path / "out"), "--no-progress"]
    result = CliRunner().invoke(main, [*args, "--format", "JPEG"])
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "out").glob("a.*")] == ["a.jpg"]
    again = CliRunner().invoke(main, [*args, "--format", "jpg"])
    assert again.exit_code == 0 and "skipped 1" in again.output, again.output  # one format
