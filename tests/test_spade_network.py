"""SPADE's generator: its size, its geometry and the label map's hold on every layer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from translate.models.model_file import declared_geometry
from translate.networks import build_generator, count_parameters


def _conv(k: int, cin: int, cout: int, bias: bool = True) -> int:
    return k * k * cin * cout + (cout if bias else 0)


def _spade(channels: int, labels: int, hidden: int) -> int:
    return _conv(3, labels, hidden) + 2 * _conv(3, hidden, channels)


def _block(fin: int, fout: int, labels: int, hidden: int) -> int:
    middle = min(fin, fout)
    count = _conv(3, fin, middle) + _conv(3, middle, fout)
    count += _spade(fin, labels, hidden) + _spade(middle, labels, hidden)
    if fin != fout:  # the learned shortcut: SPADE and a 1x1 convolution without bias
        count += _spade(fin, labels, hidden) + _conv(1, fin, fout, bias=False)
    return count


@pytest.mark.parametrize(("labels", "ngf", "hidden"), [(6, 4, 8), (36, 64, 128)])
def test_the_parameter_count_is_the_papers_layout(labels: int, ngf: int, hidden: int) -> None:
    widths = [16, 16, 16, 16, 8, 4, 2, 1]  # head, middle 0 and 1, up 0 to 3
    expected = _conv(3, labels, 16 * ngf) + _conv(3, ngf, 3)
    expected += sum(
        _block(a * ngf, b * ngf, labels, hidden)
        for a, b in zip(widths[:-1], widths[1:], strict=True)
    )
    with torch.device("meta"):
        net = build_generator("spade", in_channels=labels, out_channels=3, ngf=ngf, hidden=hidden)
    assert count_parameters(net) == expected
    if ngf == 64:  # pinned: the paper's width, Cityscapes' 35 classes and instance edges
        assert expected == 93_048_003


def test_a_64_pixel_label_map_gives_a_64_pixel_image_that_follows_the_map() -> None:
    torch.manual_seed(0)
    net = build_generator("spade", in_channels=4, out_channels=3, ngf=4, hidden=8, norm="instance")
    assert declared_geometry(net) == {"scale": 1, "input_kind": "labels", "size_multiple": 32}
    assert hasattr(net.blocks[0].conv_0, "parametrizations")  # spectral norm, as the authors'
    net.eval()
    ids = torch.zeros(1, 64, 64, dtype=torch.long)
    ids[:, :, 32:] = 2
    one_hot = torch.nn.functional.one_hot(ids, 4).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        out = net(one_hot)
        changed = one_hot.clone()
        # rows and columns 9 to 15: none that the input convolution's 2x2 sample reads
        changed[:, :, 9:16, 9:16] = torch.tensor([0.0, 1.0, 0.0, 0.0])[:, None, None]
        other = net(changed)
    assert out.shape == (1, 3, 64, 64) and out.abs().max() <= 1
    diff = (other - out).abs().sum(1)[0]
    # SPADE brings the change in where the labels changed; the far corner barely moves
    assert diff[9:16, 9:16].mean() > 10 * diff[48:, 48:].mean()


def test_bad_options_are_refused_naming_them() -> None:
    with pytest.raises(ValueError, match="num_upsampling: 5 or 6, got 4"):
        build_generator("spade", in_channels=4, num_upsampling=4)
    with pytest.raises(ValueError, match="norm"):
        build_generator("spade", in_channels=4, norm="group")
    net = build_generator("spade", in_channels=4, ngf=2, hidden=4, num_upsampling=6)
    assert net.size_multiple == 64
    assert net.eval()(torch.zeros(1, 4, 64, 64)).shape == (1, 3, 64, 64)


def test_the_style_encoder_is_the_papers_and_the_code_starts_the_generator() -> None:
    labels, ngf, hidden, style = 5, 2, 4, 8
    with torch.device("meta"):
        plain = build_generator("spade", in_channels=labels, ngf=ngf, hidden=hidden)
        styled = build_generator(
            "spade", in_channels=labels, ngf=ngf, hidden=hidden, style_dim=style
        )
    widths = [3] + [w * ngf for w in (1, 2, 4, 8, 8, 8)]  # RGB in, six stride-2 convolutions
    encoder = sum(_conv(3, a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
    encoder += 2 * (8 * ngf * 4 * 4 * style + style)  # 4x4 at 256 px: mu and logvar
    start = style * 16 * ngf * 8 * 8 + 16 * ngf * 8 * 8  # z to the 8x8 grid of a 256 px crop
    expected = count_parameters(plain) - _conv(3, labels, 16 * ngf) + encoder + start
    assert count_parameters(styled) == expected
    assert (plain.noise_dim, styled.noise_dim) == (0, style)

    torch.manual_seed(0)
    net = build_generator("spade", in_channels=labels, ngf=ngf, hidden=hidden, style_dim=style)
    net.eval()
    hot = torch.zeros(2, labels, 64, 96)
    hot[:, 1] = 1
    with torch.no_grad():
        z = net.encode_style(torch.rand(2, 3, 40, 50) * 2 - 1)  # any size: resized to 256
        assert z.shape == (2, style)
        assert torch.equal(net(hot, z), net(hot, z)) and net(hot, z).shape == (2, 3, 64, 96)
        torch.manual_seed(1)
        drawn = net(hot)  # z None: drawn from torch's global RNG
        torch.manual_seed(1)
        assert torch.equal(drawn, net(hot, torch.randn(2, style)))
    with pytest.raises(ValueError, match="z: feature taps"):
        net(hot, z, layers=[0])
    with pytest.raises(ValueError, match=r"takes no code \(style_dim 0\)"):
        build_generator("spade", in_channels=labels, ngf=ngf, hidden=hidden)(hot, z)


def _reference_spade(norm: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """SPADE as the paper writes it, each step a new tensor: what the in-place one must equal."""
    labels = F.interpolate(labels, size=x.shape[-2:], mode="nearest")
    shared = norm.mlp_shared(labels)
    return norm.param_free_norm(x) * (1 + norm.mlp_gamma(shared)) + norm.mlp_beta(shared)


def _reference_generate(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    out = net.fc(F.interpolate(x, size=(h // net.size_multiple, w // net.size_multiple)))
    for up, block in zip(net.upsample_before, net.blocks, strict=True):
        if up:
            out = F.interpolate(out, scale_factor=2.0, mode="nearest")
        shortcut = (
            block.conv_s(_reference_spade(block.norm_s, out, x)) if block.learned_shortcut else out
        )
        dx = block.conv_0(F.leaky_relu(_reference_spade(block.norm_0, out, x), 0.2))
        out = shortcut + block.conv_1(F.leaky_relu(_reference_spade(block.norm_1, dx, x), 0.2))
    return net.tanh(net.conv_img(F.leaky_relu(out, 0.2)))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_in_place_steps_and_shared_resizes_compute_the_papers_values(precision: str) -> None:
    torch.manual_seed(0)
    net = build_generator("spade", in_channels=5, ngf=2, hidden=4).eval()
    for module in net.modules():  # running statistics a trained model would have
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2)
    ids = torch.randint(0, 5, (2, 64, 96))
    hot = F.one_hot(ids, 5).permute(0, 3, 1, 2).float()
    bf16 = precision == "bf16"
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16), torch.no_grad():
        expected = _reference_generate(net, hot)
        assert torch.equal(net(hot), expected)  # the same bits: the same operations
        with torch.enable_grad():  # training keeps what the gradients need
            assert torch.equal(net(hot), expected)
    net.train()
    hot.requires_grad_(True)
    net(hot).sum().backward()  # no in-place step overwrites a value the graph needs
    assert hot.grad is not None and hot.grad.abs().sum() > 0
