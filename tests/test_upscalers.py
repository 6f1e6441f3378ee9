"""The super-resolution generators against spandrel's own classes (the upstream code)."""

import pytest
import torch
from spandrel import ModelLoader
from spandrel.architectures import Compact as arch
from spandrel.architectures.ESRGAN import ESRGAN

import translate
from translate.networks import count_parameters
from translate.networks.upscalers import UNSHUFFLE, rrdbnet_state_from_esrgan


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
