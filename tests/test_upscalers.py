"""The super-resolution generators against spandrel's own classes (the upstream code)."""

import pytest
import torch
from spandrel.architectures import Compact as arch

import translate
from translate.networks import count_parameters


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
    # And ours (other random weights) into theirs.
    _random_(ours)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.allclose(_as_upstream(ours, x), theirs(x), atol=1e-5)


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
