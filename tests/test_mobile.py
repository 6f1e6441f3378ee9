"""The depthwise-separable mobile ResNet generators."""

import json

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import translate
from translate.cli import main
from translate.data.transforms import Preprocess
from translate.inference.export import export_generator
from translate.models.model_file import (
    GeneratorSpec,
    InputSpec,
    LoadedModel,
    load_generators,
    save_generators,
)
from translate.networks import count_macs, count_parameters


def _depthwise(net):
    return [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]


@pytest.mark.parametrize(
    ("name", "options", "blocks"),
    [
        ("mobile_resnet_9blocks", {}, 9),
        ("mobile_resnet_6blocks", {"norm": "batch", "dropout": True}, 6),
        ("mobile_resnet", {"n_blocks": 2, "widths": [4, 6, 8, 5]}, 2),
    ],
)
def test_shapes_blocks_and_size_multiple(name, options, blocks):
    net = translate.build_generator(name, in_channels=1, out_channels=4, ngf=4, **options)
    assert net.size_multiple == 4
    out = net(torch.randn(2, 1, 20, 12) * 5)
    assert out.shape == (2, 4, 20, 12)
    assert out.abs().max() <= 1
    # Two separable convolutions per block, each a depthwise 3x3 over all its channels.
    depthwise = _depthwise(net)
    assert len(depthwise) == 2 * blocks
    assert all(m.kernel_size == (3, 3) and m.groups == m.in_channels for m in depthwise)


def test_default_counts():
    net = translate.build_generator("mobile_resnet_9blocks")
    assert count_parameters(net) == 1_987_075
    teacher = translate.build_generator("resnet_9blocks")
    # Separable blocks alone cut resnet_9blocks' 49.6 GMAC to 11.1 at the same widths.
    assert count_macs(net, (3, 256, 256)) == 11_066_671_104
    assert count_macs(teacher, (3, 256, 256)) / count_macs(net, (3, 256, 256)) > 4


def test_widths_set_each_stage():
    net = translate.build_generator("mobile_resnet_6blocks", ngf=64, widths=[8, 12, 16, 6])
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    stem, down1, down2 = convs[:3]
    assert (stem.out_channels, down1.out_channels, down2.out_channels) == (8, 12, 16)
    block = convs[3:7]  # depthwise, pointwise to the inner width, depthwise, pointwise back
    assert [m.out_channels for m in block] == [16, 6, 6, 16]
    up1, up2, last = convs[-3:]
    assert (up1.out_channels, up2.out_channels, last.in_channels) == (12, 8, 8)
    # Three widths leave the inner width at the residual width; ngf alone doubles per stage.
    three = translate.build_generator("mobile_resnet_6blocks", widths=[8, 12, 16])
    assert count_parameters(three) == count_parameters(
        translate.build_generator("mobile_resnet_6blocks", widths=[8, 12, 16, 16])
    )
    assert count_parameters(translate.build_generator("mobile_resnet_6blocks", ngf=4)) == (
        count_parameters(translate.build_generator("mobile_resnet_6blocks", widths=[4, 8, 16]))
    )


@pytest.mark.parametrize("widths", [[8, 12], [8, 12, 0], [8, 12, 16, 6, 4], [8, 1.5, 16]])
def test_bad_widths(widths):
    with pytest.raises(ValueError, match="widths must be 3 or 4 positive integers"):
        translate.build_generator("mobile_resnet_9blocks", widths=widths)


SPEC = GeneratorSpec(
    "mobile_resnet_9blocks", 3, 2, {"n_blocks": 2, "widths": [4, 8, 8, 6], "init_gain": 0.3}
)


def test_generator_file_roundtrip_and_info(tmp_path):
    net = SPEC.build().eval()
    path = tmp_path / "g.safetensors"
    preprocess = InputSpec(transforms=Preprocess(mode="crop", crop_size=30))
    save_generators(path, {"AtoB": (SPEC, net)}, preprocess=preprocess)
    loaded = load_generators(path)
    assert loaded.specs["AtoB"] == SPEC
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert torch.equal(loaded.generators["AtoB"](x), net(x))

    result = CliRunner().invoke(main, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    described = json.loads(result.output)["generators"]["AtoB"]
    # Counted at the training crop, padded up to the size multiple (30 -> 32).
    assert described["gmac_at"] == "32x32"
    assert described["gmac"] == round(count_macs(net, (3, 32, 32)) / 1e9, 3)
    text = CliRunner().invoke(main, ["info", str(path)]).output
    assert "gmac_at: 32x32" in text


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export(tmp_path, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    model = LoadedModel({"AtoB": SPEC.build().eval()}, {"AtoB": SPEC})
    # export_generator compares the export with PyTorch at two sizes and raises on a mismatch.
    out = export_generator(model, tmp_path / f"g.{fmt}", fmt)
    assert out.stat().st_size > 0


def test_the_reference_resnet_keeps_full_convolutions_and_takes_widths():
    net = translate.build_generator("resnet_6blocks", widths=[4, 8, 12, 6])
    assert not _depthwise(net)
    assert count_parameters(net) < count_parameters(translate.build_generator("resnet_6blocks"))
    assert net(torch.zeros(1, 3, 16, 16)).shape == (1, 3, 16, 16)


def test_feature_taps_match_the_teachers_stages():
    """The same tap indices reach the same stages in a mobile student and its teacher, so
    feature distillation pairs them up at equal resolution."""
    student = translate.build_generator("mobile_resnet_9blocks", widths=[4, 6, 8, 5])
    teacher = translate.build_generator("resnet_9blocks", ngf=4)
    x = torch.randn(1, 3, 16, 16)
    layers = [4, 8, 12, 16]
    s_feats, t_feats = student(x, layers=layers), teacher(x, layers=layers)
    assert [f.shape[1] for f in s_feats] == [6, 8, 8, 8]
    assert [f.shape[1] for f in t_feats] == [8, 16, 16, 16]
    assert [f.shape[2:] for f in s_feats] == [f.shape[2:] for f in t_feats]
    # Tap 12 is entry 12 of the network: the residual stream after three separable blocks.
    expected = student.model[:13](x)
    assert torch.equal(s_feats[2], expected)


def test_the_shuffle_student_runs_no_layer_at_full_resolution():
    net = translate.build_generator("shuffle_resnet", in_channels=1, out_channels=4, ngf=4)
    assert net.size_multiple == 4
    sides: list[int] = []
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(lambda m, args, out: sides.append(args[0].shape[-1]))
    out = net(torch.randn(2, 1, 20, 12) * 5)
    assert out.shape == (2, 4, 20, 12) and out.abs().max() <= 1
    # Every convolution at a quarter of the side (5: the blocks' reflection-padded 3), but
    # the last, at half.
    assert set(sides) == {3, 5, 6} and sides.index(6) == len(sides) - 1
    assert len(_depthwise(net)) == 2 * 6
    # ngf 8, the worldmaps student: 0.173 GMAC at 256 px, 1.9x fewer than the mobile one.
    student = translate.build_generator("shuffle_resnet", ngf=8)
    assert count_parameters(student) == 40_492
    assert count_macs(student, (3, 256, 256)) == 173_015_040
    with pytest.raises(ValueError, match="n_blocks: must be 0 or more"):
        translate.build_generator("shuffle_resnet", n_blocks=-1)


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_the_shuffle_student_exports(tmp_path, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    spec = GeneratorSpec("shuffle_resnet", 3, 3, {"ngf": 2, "n_blocks": 2, "init_gain": 0.3})
    model = LoadedModel({"AtoB": spec.build().eval()}, {"AtoB": spec})
    assert export_generator(model, tmp_path / f"g.{fmt}", fmt).stat().st_size > 0


@pytest.mark.parametrize(
    ("name", "options", "taps"),
    [
        ("resnet_9blocks", {}, [9, 12, 15, 18]),
        ("mobile_resnet_6blocks", {}, [9, 11, 13, 15]),
        ("resnet_9blocks", {"antialias": True}, [11, 14, 17, 20]),
        ("mobile_resnet", {"n_blocks": 1}, [9, 10]),
        ("shuffle_resnet", {}, [3, 5, 7, 9]),
        ("unet_256", {}, []),
    ],
)
def test_trunk_taps_are_the_trunk_input_and_its_thirds(name, options, taps):
    net = translate.build_generator(name, ngf=2, **options)
    assert net.trunk_taps() == taps
    if taps:  # the first is the block's input, the others block outputs
        blocks = [type(net.model[i]).__name__ for i in taps]
        assert blocks[0] != "ResnetBlock" and set(blocks[1:]) == {"ResnetBlock"}
