"""The super-resolution networks: the generators against spandrel's own classes (the
upstream code), Real-ESRGAN's U-Net discriminator against upstream's keys and torch's
hook-based spectral norm, which upstream saved its weights with."""

import pytest
import torch
import torch.nn.functional as F
from spandrel import ModelLoader
from spandrel.architectures import Compact as arch
from spandrel.architectures.ESRGAN import ESRGAN
from torch import nn

import translate
from translate.inference.export import export_generator
from translate.models.loading import load_model
from translate.models.model_file import (
    GeneratorSpec,
    load_generators,
    read_metadata,
    save_generators,
)
from translate.networks import count_parameters
from translate.networks.discriminators import upstream_spectral_norm
from translate.networks.upscalers import UNSHUFFLE, rrdbnet_state_from_esrgan, to_unit


def _random_(net):
    """Weights far from any init, so a wrong key or layer order cannot go unseen."""
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return net.eval()


def _as_upstream(ours, x):
    """Our output on [-1, 1] in upstream's [0, 1] units, for an upstream input ``x``."""
    with torch.no_grad():
        return (ours(x * 2 - 1) + 1) / 2


@pytest.mark.parametrize(
    ("options", "expected"),
    # realesr-general-x4v3 and realesr-animevideov3 (num_conv 16), computed by hand:
    # convs 3*64*9+64, num_conv * (64*64*9+64), 64*48*9+48; PReLUs 64 * (num_conv + 1).
    [({"num_conv": 32}, 1_213_296), ({"num_conv": 16}, 621_424)],
)
def test_compact_parameter_counts_match_upstream(options, expected):
    ours = translate.build_generator("srvgg_compact", scale=4, num_feat=64, **options)
    theirs = arch.Compact(num_feat=64, upscale=4, **options)
    assert count_parameters(ours) == count_parameters(theirs) == expected


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_compact_matches_spandrel_both_ways(scale):
    theirs = _random_(arch.Compact(num_feat=8, num_conv=3, upscale=scale))
    ours = translate.build_generator("srvgg_compact", scale=scale, num_feat=8, num_conv=3)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.rand(2, 3, 9, 7)
    with torch.no_grad():
        expected = theirs(x)
    assert expected.shape == (2, 3, 9 * scale, 7 * scale)
    assert torch.allclose(_as_upstream(ours.eval(), x), expected, atol=1e-5)


def test_compact_options_reach_the_network():
    net = translate.build_generator("srvgg_compact", scale=3, num_feat=8, num_conv=5, act="relu")
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5 + 2 and net.scale == 3 and net.size_multiple == 1
    assert convs[0].out_channels == 8 and convs[-1].out_channels == 3 * 3 * 3
    assert not any(isinstance(m, torch.nn.PReLU) for m in net.modules())
    assert net(torch.zeros(1, 3, 5, 6)).shape == (1, 3, 15, 18)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"scale": 0}, "scale must be a positive integer"),
        ({"act": "gelu"}, "act must be one of prelu, relu, leakyrelu"),
        ({"out_channels": 1}, "out_channels must equal in_channels"),
    ],
)
def test_compact_refuses_bad_options_naming_them(options, message):
    with pytest.raises(ValueError, match=message):
        translate.build_generator("srvgg_compact", num_feat=4, num_conv=1, **options)


def _tiny_esrgan(scale):
    """spandrel's ESRGAN as it loads a Real-ESRGAN file of ``scale`` (growth fixed at 32)."""
    factor = UNSHUFFLE[scale]
    shuffle = {"shuffle_factor": factor} if factor > 1 else {}
    return ESRGAN(in_nc=3 * factor**2, num_filters=8, num_blocks=2, scale=4, **shuffle)


@pytest.mark.parametrize(
    ("scale", "expected"),
    # RealESRGAN_x4plus and RealESRGAN_x2plus; x1 folds 48 input channels.
    [(4, 16_697_987), (2, 16_703_171), (1, 16_723_907)],
)
def test_rrdbnet_parameter_counts_match_upstream(scale, expected):
    factor = UNSHUFFLE[scale]
    with torch.device("meta"):  # shapes only: 16.7M parameters need no initialising here
        ours = translate.build_generator("rrdbnet", scale=scale)
        theirs = ESRGAN(in_nc=3 * factor**2, scale=4, shuffle_factor=factor if factor > 1 else None)
    assert count_parameters(ours) == count_parameters(theirs) == expected


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_rrdbnet_matches_spandrel_from_its_esrgan_layout(scale):
    theirs = _random_(_tiny_esrgan(scale))
    ours = translate.build_generator("rrdbnet", scale=scale, num_feat=8, num_block=2)
    ours.load_state_dict(rrdbnet_state_from_esrgan(theirs.state_dict()), strict=True)
    x = torch.rand(1, 3, 12, 8)
    with torch.no_grad():
        expected = theirs(x)
    assert expected.shape == (1, 3, 12 * scale, 8 * scale)
    assert torch.allclose(_as_upstream(ours.eval(), x), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "options", "architecture"),
    [
        ("rrdbnet", {"num_feat": 8, "num_block": 2}, "ESRGAN"),
        ("srvgg_compact", {"num_feat": 8, "num_conv": 3}, "Compact"),
    ],
)
@pytest.mark.parametrize("scale", [1, 2, 4])
def test_spandrel_recognises_our_state_dicts(name, options, architecture, scale):
    ours = _random_(translate.build_generator(name, scale=scale, **options))
    loaded = ModelLoader().load_from_state_dict(ours.state_dict())
    assert (loaded.architecture.id, loaded.scale) == (architecture, scale)
    x = torch.rand(2, 3, 12, 8)
    with torch.no_grad():
        theirs = loaded.model.eval()(x)
    assert theirs.shape == (2, 3, 12 * scale, 8 * scale)
    assert torch.allclose(_as_upstream(ours, x), theirs, atol=1e-5)


def test_rrdbnet_sides_and_tap_points():
    net = translate.build_generator("rrdbnet", scale=2, num_feat=8, num_block=3).eval()
    assert (net.scale, net.size_multiple) == (2, 2)
    assert translate.build_generator("rrdbnet", scale=1, num_block=1).size_multiple == 4
    # One point per RRDB between the stem and the trunk convolution.
    assert net.tap_points()[1:4] == list(net.body)
    x = torch.randn(1, 3, 10, 6)
    with torch.no_grad():
        first, *blocks = net(x, layers=[0, 1, 2, 3])
    # x2 folds the input to 12 channels at half the side.
    assert first.shape == (1, 8, 5, 3) and all(b.shape == (1, 8, 5, 3) for b in blocks)
    assert net(x).shape == (1, 3, 20, 12)


def test_rrdbnet_refuses_other_scales_and_foreign_layouts():
    with pytest.raises(ValueError, match="scale must be 4, 2, 1; got 3"):
        translate.build_generator("rrdbnet", scale=3, num_block=1)
    state = _tiny_esrgan(4).state_dict()
    state["model.1.sub.0.RDB1.conv1x1.weight"] = torch.zeros(1)  # ESRGAN+
    with pytest.raises(ValueError, match="model.1.sub.0.RDB1.conv1x1.weight: not a key"):
        rrdbnet_state_from_esrgan(state)


def _upstream_unet_keys(num_feat):
    """UNetDiscriminatorSN's state dict in Real-ESRGAN: name -> shape."""
    widths = [num_feat, num_feat * 2, num_feat * 4, num_feat * 8]
    convs = {f"conv{i}": (widths[i], widths[i - 1], 4) for i in (1, 2, 3)}
    convs |= {f"conv{i}": (widths[6 - i], widths[7 - i], 3) for i in (4, 5, 6)}
    convs |= {"conv7": (num_feat, num_feat, 3), "conv8": (num_feat, num_feat, 3)}
    keys = {"conv0.weight": (num_feat, 3, 3, 3), "conv0.bias": (num_feat,)}
    for name, (c_out, c_in, k) in convs.items():
        keys |= {
            f"{name}.weight_orig": (c_out, c_in, k, k),
            f"{name}.weight_u": (c_out,),
            f"{name}.weight_v": (c_in * k * k,),
        }
    return keys | {"conv9.weight": (1, num_feat, 3, 3), "conv9.bias": (1,)}


def test_unet_discriminator_has_upstreams_keys_and_parameter_count():
    with torch.device("meta"):
        net = translate.build_discriminator("unet_sn", 3)
    state = net.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == _upstream_unet_keys(64)
    # RealESRGAN_x4plus_netD: 4.38M parameters.
    assert count_parameters(net) == 4_376_897
    # A file in upstream's keys loads strictly, and gives back what it was given.
    small = translate.build_discriminator("unet_sn", 3, num_feat=4)
    upstream = {k: torch.randn(shape) for k, shape in _upstream_unet_keys(4).items()}
    small.load_state_dict(upstream, strict=True)
    assert all(torch.equal(small.state_dict()[k], v) for k, v in upstream.items())


def test_upstream_spectral_norm_is_torchs_hook_based_one_under_its_keys():
    torch.manual_seed(0)
    hooks = nn.utils.spectral_norm(nn.Conv2d(4, 6, 3, bias=False))
    ours = upstream_spectral_norm(nn.Conv2d(4, 6, 3, bias=False))
    ours.load_state_dict(hooks.state_dict(), strict=True)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        # Evaluation: the same function of the same stored vectors.
        assert torch.allclose(ours.eval()(x), hooks.eval()(x), atol=1e-6)
        # Training: a power-iteration step per call in each (u and v in the other order),
        # converging on the same largest singular value.
        hooks.train(), ours.train()
        for _ in range(30):
            hooks(x), ours(x)
        assert torch.allclose(ours(x), hooks(x), rtol=1e-3, atol=1e-5)
    saved = ours.state_dict()
    assert set(saved) == set(hooks.state_dict()) == {"weight_orig", "weight_u", "weight_v"}


def test_unet_discriminator_scores_every_pixel_and_normalises_its_convolutions():
    net = translate.build_discriminator("unet_sn", 3, num_feat=4)
    assert net.size_multiple == 8
    x = torch.randn(2, 3, 32, 24)
    assert net(x).shape == (2, 1, 32, 24)
    for _ in range(20):
        net(x)
    net.eval()
    normed = [m for m in net.modules() if hasattr(m, "parametrizations")]
    assert len(normed) == 8  # conv1..conv8; conv0 and conv9 stay plain
    for conv in normed:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.05)


def test_unet_discriminator_skip_connections_carry_the_encoder_levels():
    torch.manual_seed(0)
    skip = translate.build_discriminator("unet_sn", 3, num_feat=4).eval()
    plain = translate.build_discriminator("unet_sn", 3, num_feat=4, skip_connection=False)
    plain.load_state_dict(skip.state_dict(), strict=True)
    x = torch.randn(1, 3, 16, 16, requires_grad=True)
    # Without skips every path runs through the 2x2 bottleneck; with them the first level
    # reaches the output directly: the same weights give another output.
    assert not torch.allclose(skip(x), plain.eval()(x))
    # Cut the decoder from the bottleneck (conv4 outputs zeros): only the skips still bring
    # the image to the output.
    for net in (skip, plain):
        net.conv4.register_forward_hook(lambda module, args, out: torch.zeros_like(out))
    skip(x).sum().backward()
    assert x.grad.abs().sum() > 0
    x.grad = None
    plain(x).sum().backward()
    assert x.grad is None  # the output no longer depends on the image at all


@pytest.mark.parametrize(
    ("name", "options"),
    [("rrdbnet", {"num_feat": 8, "num_block": 1}), ("srvgg_compact", {"num_feat": 8})],
)
def test_sr_networks_train_under_bf16_autocast_channels_last(name, options):
    g = translate.build_generator(name, scale=4, **options).to(memory_format=torch.channels_last)
    d = translate.build_discriminator("unet_sn", 3, num_feat=4)
    d = d.to(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 8, 8).to(memory_format=torch.channels_last) * 2 - 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fake = g(x)
        loss = translate.GANLoss("vanilla")(d(fake), True)
    loss.backward()
    assert fake.shape == (2, 3, 32, 32) and loss.dtype == torch.float32
    for net in (g, d):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize(
    ("name", "options", "architecture"),
    [
        ("rrdbnet", {"num_feat": 8, "num_block": 1}, "ESRGAN"),
        ("srvgg_compact", {"num_feat": 8, "num_conv": 2}, "Compact"),
    ],
)
def test_a_generator_file_loads_in_spandrel_with_the_same_output(
    tmp_path, name, options, architecture
):
    spec = GeneratorSpec.declared(name, 3, 3, {**options, "scale": 2})
    net = _random_(spec.build())
    path = tmp_path / "g.safetensors"
    save_generators(path, {"AtoB": (spec, net)})
    assert read_metadata(path).version == 3  # tensors under the network's own keys
    theirs = ModelLoader().load_from_file(path)
    assert (theirs.architecture.id, theirs.scale) == (architecture, 2)
    x = torch.rand(1, 3, 8, 6)
    with torch.no_grad():
        assert torch.allclose(theirs.model.eval()(x), _as_upstream(net, x), atol=1e-5)
        # And translate reads it back as it was.
        loaded = load_generators(path)
        assert loaded.specs["AtoB"] == spec
        assert torch.equal(loaded.generators["AtoB"](x * 2 - 1), net(x * 2 - 1))


@pytest.mark.parametrize(
    ("name", "options"),
    [("rrdbnet", {"num_feat": 4, "num_block": 1}), ("srvgg_compact", {"num_feat": 4})],
)
def test_sr_generators_export_to_torchscript(tmp_path, name, options):
    spec = GeneratorSpec.declared(name, 3, 3, {**options, "scale": 2})
    net = _random_(spec.build())
    save_generators(tmp_path / "g.safetensors", {"AtoB": (spec, net)})
    path = export_generator(load_model(tmp_path / "g.safetensors"), tmp_path / "g.pt")
    x = torch.rand(1, 3, 8, 6) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(torch.jit.load(str(path))(x), net(x), atol=1e-5)


def test_srvgg_compact_kaiming_init_starts_at_the_skip_and_keeps_the_signal():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    for skip in ("nearest", "bilinear", "bicubic"):
        net = translate.build_generator("srvgg_compact", num_feat=16, num_conv=8, skip=skip)
        corners = None if skip == "nearest" else False
        up = F.interpolate(x, scale_factor=4.0, mode=skip, align_corners=corners)
        # The last convolution starts at zero: the output is exactly the skip.
        assert torch.equal(net(x), up)
    # The input still reaches the last hidden layer: PyTorch's default init (upstream's) lets
    # the body's features collapse to its biases, which is the plateau kaiming avoids.
    spread = {}
    for init in ("kaiming", "default"):
        torch.manual_seed(0)
        net = translate.build_generator("srvgg_compact", num_feat=16, num_conv=8, init=init)
        hidden = to_unit(x)
        for layer in net.body[:-1]:
            hidden = layer(hidden)
        spread[init] = hidden.std(dim=0).mean().item()  # how much it varies with the input
    assert spread["kaiming"] > 100 * spread["default"]


def test_srvgg_compact_refuses_an_unknown_skip_or_init():
    for key in ("skip", "init"):
        with pytest.raises(ValueError, match=key):
            translate.build_generator("srvgg_compact", num_feat=4, num_conv=1, **{key: "bogus"})
