import sys

import pytest
import torch

from translate.data.transforms import Preprocess
from translate.inference import export
from translate.inference.export import describe_model, export_generator
from translate.inference.translator import Translator
from translate.models.loading import load_model
from translate.models.model_file import GeneratorSpec, InputSpec, LoadedModel
from translate.networks import count_parameters

SPECS = {
    "resnet": GeneratorSpec("resnet_9blocks", options={"ngf": 4, "n_blocks": 1, "init_gain": 0.3}),
    "unet": GeneratorSpec(
        "unet_256", 3, 1, options={"ngf": 4, "num_downs": 3, "norm": "instance", "init_gain": 0.3}
    ),
}


def _model(*specs):
    specs = dict(zip(("AtoB", "BtoA")[: len(specs)], specs, strict=True))
    return LoadedModel({d: s.build().eval() for d, s in specs.items()}, specs)


def _max_diff(run, net, shape):
    x = torch.rand(shape) * 2 - 1
    with torch.no_grad():
        return (run(x) - net(x)).abs().max().item()


# Sizes other than the one the export traces at (32x32), including batch 3 and non-square.
SIZES = [(3, 3, 24, 40), (1, 3, 16, 8)]


@pytest.mark.parametrize("kind", SPECS)
def test_torchscript_runs_at_other_sizes(tmp_path, kind):
    model = _model(SPECS[kind])
    out = export_generator(model, tmp_path / "g.pt", "torchscript")
    scripted = torch.jit.load(str(out))
    for shape in SIZES:
        assert _max_diff(scripted, model.generators["AtoB"], shape) <= 1e-4


@pytest.mark.parametrize("kind", SPECS)
def test_onnx_runs_at_other_sizes(tmp_path, kind):
    onnxruntime = pytest.importorskip("onnxruntime")
    model = _model(SPECS[kind])
    out = export_generator(model, tmp_path / "g.onnx", "onnx", opset=17)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])

    def run(x):
        return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])

    for shape in SIZES:
        assert _max_diff(run, model.generators["AtoB"], shape) <= 1e-4


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
@pytest.mark.parametrize("kind", SPECS)
def test_exports_pad_and_crop_as_the_converter_does(tmp_path, kind, fmt):
    """Sides that are no multiple of the generator's (8 for this U-Net, 4 for the ResNet)."""
    if fmt == "onnx":
        onnxruntime = pytest.importorskip("onnxruntime")
    model = _model(SPECS[kind])
    out = export_generator(model, tmp_path / f"g.{fmt}", fmt)
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])

        def run(x):
            return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    else:
        run = torch.jit.load(str(out))
    converter = Translator(model, device="cpu", precision="fp32", value_range=(-1, 1))
    for height, width in ((120, 120), (203, 301)):
        x = torch.rand(1, 3, height, width) * 2 - 1
        with torch.no_grad():
            got = run(x)
        assert got.shape == (1, SPECS[kind].out_channels, height, width)
        assert (got - converter(x)).abs().max().item() <= 1e-4


def test_direction_of_a_cyclegan_model(tmp_path):
    model = _model(SPECS["resnet"], SPECS["unet"])
    scripted = torch.jit.load(str(export_generator(model, tmp_path / "b.pt", direction="BtoA")))
    assert scripted(torch.zeros(1, 3, 16, 16)).shape == (1, 1, 16, 16)
    with pytest.raises(ValueError, match=r"direction 'CtoD' is not in this model"):
        export_generator(model, tmp_path / "c.pt", direction="CtoD")


def test_mismatch_writes_nothing(tmp_path, monkeypatch):
    out = tmp_path / "g.pt"
    out.write_bytes(b"previous export")

    def broken(net, path):
        path.write_bytes(b"bad")
        return lambda x: net(x) + 1e-3

    monkeypatch.setattr(export, "_export_torchscript", broken)
    with pytest.raises(ValueError, match=r"g\.pt: the torchscript export differs .* by 1\.00e-03"):
        export_generator(_model(SPECS["resnet"]), out)
    assert out.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["g.pt"]


def test_onnx_missing_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(
        ImportError, match=r'onnxruntime is missing\): pip install "translate\[onnx'
    ):
        export_generator(_model(SPECS["resnet"]), tmp_path / "g.onnx", "onnx")
    assert not (tmp_path / "g.onnx").exists()


def test_bad_options(tmp_path):
    model = _model(SPECS["resnet"])
    with pytest.raises(ValueError, match="format must be one of torchscript, onnx"):
        export_generator(model, tmp_path / "g.tflite", "tflite")
    with pytest.raises(ValueError, match="--opset only applies to --format onnx"):
        export_generator(model, tmp_path / "g.pt", "torchscript", opset=17)


def test_describe_generator_file(tmp_path):
    model = _model(SPECS["resnet"], SPECS["unet"])
    model.preprocess = InputSpec(Preprocess(load_size=72, crop_size=64))
    model.training = {"model": "cycle_gan", "epochs": 3}
    info = describe_model(model, "run1")
    assert info["source"] == "run1"
    assert info["training"] == {"model": "cycle_gan", "epochs": 3}
    assert "64x64 crops" in info["preprocess"]["native_size"]
    b = info["generators"]["BtoA"]
    assert b["architecture"] == "unet_256"
    assert b["options"]["num_downs"] == 3
    assert b["parameters"] == count_parameters(model.generators["BtoA"])
    assert b["input"]["channels"] == 3 and b["output_channels"] == 1
    assert b["input"]["size_multiple"] == 8
    assert info["generators"]["AtoB"]["input"]["size_multiple"] == 4


def test_describe_reference_checkpoint(tmp_path):
    net = SPECS["resnet"].build()
    torch.save(net.state_dict(), tmp_path / "latest_net_G.pth")
    info = describe_model(load_model(tmp_path / "latest_net_G.pth"), tmp_path / "x")
    assert info["generators"]["AtoB"]["parameters"] == count_parameters(net)
    assert info["training"]["source"] == "reference checkpoint"
    assert info["preprocess"]["native_size"] == "any size (padded to the size multiple)"


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_a_scaled_generator_exports_at_its_scale(tmp_path, scaled_model, fmt):
    """A 2x, 4-channel generator: the output is exactly twice the input at any size, as in
    PyTorch, and the ONNX graph declares its sides as 2x the input's, not equal to them."""
    out = export_generator(scaled_model, tmp_path / f"g.{fmt}", fmt)
    if fmt == "onnx":
        onnx = pytest.importorskip("onnx")
        onnxruntime = pytest.importorskip("onnxruntime")
        (output,) = onnx.load(str(out)).graph.output
        dims = [d.dim_param or d.dim_value for d in output.type.tensor_type.shape.dim]
        assert dims == ["batch", 3, "2*height", "2*width"]
        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])

        def run(x):
            return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    else:
        run = torch.jit.load(str(out))
    converter = Translator(scaled_model, device="cpu", precision="fp32", value_range=(-1, 1))
    for shape in ((1, 4, 12, 20), (2, 4, 17, 9)):
        x = torch.rand(shape) * 2 - 1
        with torch.no_grad():
            got = run(x)
        assert got.shape == (shape[0], 3, 2 * shape[2], 2 * shape[3])
        assert (got - converter(x)).abs().max().item() <= 1e-4


@pytest.mark.parametrize("norm_stats", [None, "batch"])
def test_a_generator_whose_deepest_layers_are_one_pixel_at_one_multiple_exports(
    tmp_path, norm_stats
):
    """SPADE pads to multiples of 32 and normalises by the input's statistics (instance
    norm; batch norm with norm_stats=batch): traced at 32 px its deepest grid is 1x1, which
    torch refuses to normalise, so the export traces at two multiples."""
    pytest.importorskip("onnxruntime")
    spec = GeneratorSpec.declared("spade", 5, 3, {"ngf": 2, "norm": "instance"})
    assert spec.size_multiple == 32
    out = export_generator(_model(spec), tmp_path / "g.onnx", "onnx", norm_stats=norm_stats)
    assert out.stat().st_size > 0


def test_a_pixel_unshuffle_exports_as_space_to_depth_and_leaves_the_model_as_it_was(tmp_path):
    """torch exports pixel_unshuffle as a 6-D transpose; the graph has ONNX's SpaceToDepth
    instead, the next convolution's input channels reordered to match, its outputs torch's,
    and the model itself untouched."""
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    spec = GeneratorSpec("shuffle_resnet", options={"ngf": 4, "n_blocks": 1})
    model = _model(spec)
    before = {k: v.clone() for k, v in model.generators["AtoB"].state_dict().items()}
    out = export_generator(model, tmp_path / "g.onnx", "onnx")
    nodes = onnx.load(str(out)).graph.node
    assert "SpaceToDepth" in [n.op_type for n in nodes]
    assert all(len(a.ints) < 6 for n in nodes if n.op_type == "Transpose" for a in n.attribute)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])

    def run(x):
        return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])

    for shape in SIZES:
        assert _max_diff(run, model.generators["AtoB"], shape) <= 1e-4
    after = model.generators["AtoB"].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
