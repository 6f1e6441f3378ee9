import pytest
import torch
from torch import nn

import translate
from translate.networks import DISCRIMINATORS, GENERATORS, count_parameters
from translate.networks.layers import BlurDownsample, BlurUpsample, MinibatchStdDev
from translate.networks.registry import Registry, parameters
from translate.training.objectives import OBJECTIVES


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        ("resnet_9blocks", {}, 11_378_179),
        ("resnet_6blocks", {}, 7_837_699),
        ("unet_256", {"norm": "batch"}, 54_413_955),
        ("unet_128", {"norm": "batch"}, 41_828_995),
    ],
)
def test_generator_parameter_counts_match_reference(name, options, expected):
    assert count_parameters(translate.build_generator(name, 3, 3, **options)) == expected


@pytest.mark.parametrize(
    ("in_channels", "norm", "expected"), [(3, "instance", 2_764_737), (6, "batch", 2_768_705)]
)
def test_patchgan_parameter_counts_match_reference(in_channels, norm, expected):
    net = translate.build_discriminator("patch", in_channels, norm=norm)
    assert count_parameters(net) == expected
    assert count_parameters(translate.build_discriminator("basic", in_channels, norm=norm)) == (
        expected
    )


@pytest.mark.parametrize(
    ("name", "options", "size"),
    [
        ("resnet_6blocks", {"n_blocks": 2}, 20),
        ("resnet_9blocks", {"norm": "batch", "dropout": True}, 16),
        ("unet_128", {"num_downs": 3}, 24),
        ("unet_256", {"num_downs": 6, "norm": "instance", "dropout": True}, 64),
        ("unet", {"num_downs": 2, "norm": "none"}, 12),
    ],
)
def test_generators_map_channels_and_keep_size_in_tanh_range(name, options, size):
    net = translate.build_generator(name, in_channels=1, out_channels=4, ngf=4, **options)
    assert size % net.size_multiple == 0
    out = net(torch.randn(2, 1, size, size) * 5)
    assert out.shape == (2, 4, size, size)
    assert out.abs().max() <= 1


def test_unet_depth_sets_size_multiple():
    assert translate.build_generator("unet_256", ngf=4).size_multiple == 256
    assert translate.build_generator("unet_128", ngf=4, num_downs=5).size_multiple == 32
    assert translate.build_generator("resnet_6blocks", ngf=4).size_multiple == 4


def test_resnet_blocks_and_dropout_are_configurable():
    net = translate.build_generator("resnet_9blocks", ngf=4, n_blocks=3, dropout=True)
    blocks = [m for m in net.modules() if type(m).__name__ == "ResnetBlock"]
    assert len(blocks) == 3
    assert sum(isinstance(m, nn.Dropout) for m in net.modules()) == 3


def test_unet_dropout_only_on_middle_levels():
    # Reference: num_downs - 5 middle levels at ngf * 8 carry dropout.
    net = translate.build_generator("unet_256", ngf=4, dropout=True)
    assert sum(isinstance(m, nn.Dropout) for m in net.modules()) == 3


def test_norm_choices():
    batch = translate.build_generator("resnet_6blocks", ngf=4, norm="batch")
    inst = translate.build_generator("resnet_6blocks", ngf=4, norm="instance")
    affine = translate.build_generator("resnet_6blocks", ngf=4, norm="instance", norm_affine=True)
    none = translate.build_generator("resnet_6blocks", ngf=4, norm="none")
    assert any(isinstance(m, nn.BatchNorm2d) for m in batch.modules())
    norms = [m for m in inst.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert norms and not any(m.affine for m in norms)
    assert all(m.affine for m in affine.modules() if isinstance(m, nn.InstanceNorm2d))
    assert not any(isinstance(m, nn.BatchNorm2d | nn.InstanceNorm2d) for m in none.modules())
    # Batch norm replaces the convolution bias, as in the reference.
    assert batch.model[1].bias is None and inst.model[1].bias is not None


@pytest.mark.parametrize("init", ["normal", "xavier", "kaiming", "orthogonal"])
def test_weight_init_modes(init):
    net = translate.build_generator("resnet_6blocks", ngf=8, n_blocks=1, init=init, init_gain=0.02)
    conv = net.model[4]  # the first downsampling convolution: 8 -> 16 channels, 3x3
    std = conv.weight.std().item()
    fan_in = 8 * 9
    expected = {
        "normal": 0.02,
        "xavier": 0.02 * (2 / (fan_in + 16 * 9)) ** 0.5,
        "kaiming": (2 / fan_in) ** 0.5,
        "orthogonal": None,
    }[init]
    if expected is not None:
        assert std == pytest.approx(expected, rel=0.15)
    else:
        rows = conv.weight.flatten(1)
        gram = rows @ rows.T
        assert torch.allclose(gram, 0.02**2 * torch.eye(16), atol=1e-6)
    assert torch.count_nonzero(conv.bias) == 0


def test_unknown_names_and_options_list_valid_ones():
    with pytest.raises(ValueError, match="unet_256"):
        translate.build_generator("unet_512")
    with pytest.raises(ValueError, match="multiscale"):
        translate.build_discriminator("stylegan", 3)
    with pytest.raises(ValueError, match="n_blocks"):
        translate.build_generator("resnet_9blocks", blocks=3)
    with pytest.raises(ValueError, match="instance"):
        translate.build_generator("resnet_9blocks", norm="group")
    assert "num_scales" in DISCRIMINATORS.options("multiscale")
    assert {"resnet_9blocks", "resnet_6blocks", "unet_128", "unet_256"} <= set(GENERATORS.names())


def test_patch_discriminator_receptive_field_is_70():
    net = translate.build_discriminator("patch", 3, ndf=4, norm="none")
    net.eval()
    x = torch.zeros(1, 3, 140, 140, requires_grad=True)
    out = net(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero()
    assert rows.max() - rows.min() + 1 == 70


def test_pixel_discriminator_keeps_resolution():
    net = translate.build_discriminator("pixel", 6, ndf=4)
    assert net(torch.randn(2, 6, 9, 11)).shape == (2, 1, 9, 11)


def test_multiscale_returns_features_per_scale():
    net = translate.build_discriminator("multiscale", 3, ndf=4, n_layers=2, num_scales=3)
    out = net(torch.randn(1, 3, 64, 64))
    assert len(out) == 3
    assert all(len(scale) == 4 for scale in out)  # 3 activations + logits
    assert [scale[-1].shape[-1] for scale in out] == [14, 6, 2]


# Options that let each discriminator run on 64x64 inputs.
SMALL = {"patch": {}, "pixel": {}, "multiscale": {"n_layers": 2, "num_scales": 2}}


@pytest.mark.parametrize("name", ["patch", "pixel", "multiscale"])
def test_spectral_norm_on_every_convolution(name):
    net = translate.build_discriminator(name, 3, ndf=4, spectral_norm=True, **SMALL[name])
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)
    # After a few power iterations the largest singular value of each weight is about 1.
    net.train()
    for _ in range(20):
        net(torch.randn(1, 3, 64, 64))
    net.eval()
    for conv in convs:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize(
    ("name", "options"),
    [("resnet_6blocks", {"n_blocks": 1}), ("unet_256", {"num_downs": 4, "norm": "instance"})],
)
def test_generators_channels_last_and_bf16_autocast(name, options):
    net = translate.build_generator(name, ngf=4, **options).eval()
    x = torch.randn(2, 3, 32, 32)
    reference = net(x)
    net_cl = net.to(memory_format=torch.channels_last)
    out_cl = net_cl(x.to(memory_format=torch.channels_last))
    assert torch.allclose(out_cl, reference, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_bf16 = net_cl(x.to(memory_format=torch.channels_last))
    assert out_bf16.dtype == torch.bfloat16
    assert (out_bf16.float() - reference).abs().mean() < 0.05


@pytest.mark.parametrize("name", ["patch", "pixel", "multiscale"])
@pytest.mark.parametrize("stddev", [False, True])
def test_discriminators_backward_under_bf16_autocast(name, stddev):
    net = translate.build_discriminator(name, 3, ndf=4, minibatch_stddev=stddev, **SMALL[name])
    net = net.to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = translate.GANLoss("lsgan")(net(x), True)
    loss.backward()
    assert loss.dtype == torch.float32
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


# Narrow (and for RRDB and pix2pixHD shallow) variants, so each network runs in well under a
# second; pix2pixHD's global generator then reaches 2x2 at 16 px, the least its residual
# blocks' padding takes.
TINY_OPTIONS = {"ngf": 4, "num_feat": 4, "num_block": 2, "n_downsample_global": 2}


def _tiny_generator(name):
    options = {k: v for k, v in TINY_OPTIONS.items() if k in GENERATORS.options(name)}
    net = translate.build_generator(name, **options).eval()
    side = max(net.size_multiple, 16)
    return net, torch.randn(1, 3, side, side)


@pytest.mark.parametrize("name", GENERATORS.names())
def test_every_generator_taps_features_and_stops_at_the_deepest(name):
    net, x = _tiny_generator(name)
    # a generator of a random code (noise_dim) draws one per call unless given it
    code = {"z": torch.randn(1, net.noise_dim)} if getattr(net, "noise_dim", 0) else {}
    points = net.tap_points()
    assert len(points) > 3
    with torch.no_grad():
        out = net(x, **code)
        # The last tap point is the output layer; taps come back in the order asked.
        last, first, again = net(x, **code, layers=[-1, 0, 0])
        assert torch.equal(last, out)
        assert torch.equal(first, again)
        assert net(x, **code, layers=[]) == []
        ran = []
        points[-1].register_forward_hook(lambda *_: ran.append(True))
        (middle,) = net(x, **code, layers=[len(points) // 2])
        assert middle.dim() == 4 and not ran  # nothing after the deepest tap ran
        net(x, **code)
        assert ran
    with pytest.raises(ValueError, match=f"tap points 0..{len(points) - 1}"):
        net(x, **code, layers=[len(points)])


def test_resnet_taps_count_as_the_reference_cut():
    """Layers 0, 4, 8, 12, 16 of resnet_9blocks index the top-level layers, a ResNet block
    counting as one, and a tap sees what the reference's layer-by-layer loop sees."""
    net = translate.build_generator("resnet_9blocks", ngf=4).eval()
    x = torch.randn(1, 3, 32, 32)
    feats = net(x, layers=[0, 4, 8, 12, 16])
    expected, h = [], x
    for i, layer in enumerate(net.model[:17]):
        h = layer(h)
        if i in (0, 4, 8, 12, 16):
            expected.append(h)
    assert [f.shape[1] for f in feats] == [3, 8, 16, 16, 16]
    for got, want in zip(feats, expected, strict=True):
        assert torch.equal(got, want)
    assert type(net.model[12]).__name__ == "ResnetBlock"


def test_blur_resampling_halves_and_doubles_and_keeps_a_flat_image_flat():
    flat = torch.full((1, 2, 8, 6), 0.3)
    down, up = BlurDownsample(2)(flat), BlurUpsample(2)(flat)
    assert down.shape == (1, 2, 4, 3) and up.shape == (1, 2, 16, 12)
    # to the edges: a learned transposed convolution would print its kernel (a checkerboard)
    assert torch.allclose(down, torch.full_like(down, 0.3))
    assert torch.allclose(up, torch.full_like(up, 0.3))
    impulse = torch.zeros(1, 1, 8, 8)
    impulse[0, 0, 4, 4] = 1.0
    spread = BlurUpsample(1)(impulse)[0, 0]
    # each output pixel mixes its 2x2 nearest inputs 9:3:3:1, so one input reaches 4x4 pixels
    row = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 4
    assert torch.allclose(spread[7:11, 7:11], torch.outer(row, row))
    assert spread.sum().item() == pytest.approx(4.0)  # a stride-2 upsampling: 4 outputs each


def test_antialiased_resnet_taps_count_as_the_reference_cut_default():
    """The reference CUT's own layout: stride-1 convolution, norm, ReLU and blur per
    downsampling, so 4 and 8 are the downsampling convolutions and 12, 16 blocks 1 and 5."""
    net = translate.build_generator("resnet_9blocks", ngf=4, antialias=True).eval()
    x = torch.randn(1, 3, 32, 32)
    assert net(x).shape == x.shape
    feats = net(x, layers=[0, 4, 8, 12, 16])
    assert [tuple(f.shape[1:]) for f in feats] == [
        (3, 38, 38), (8, 32, 32), (16, 16, 16), (16, 8, 8), (16, 8, 8),
    ]  # fmt: skip
    assert type(net.model[7]).__name__ == "BlurDownsample"
    assert type(net.model[12]).__name__ == type(net.model[16]).__name__ == "ResnetBlock"
    assert type(net.model[12 + 9]).__name__ == "BlurUpsample"
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in net.modules())


def test_antialiased_patch_discriminator_scores_the_same_grid():
    x = torch.randn(1, 3, 64, 64)
    plain = translate.build_discriminator("patch", 3, ndf=4, norm="instance")
    blurred = translate.build_discriminator("patch", 3, ndf=4, norm="instance", antialias=True)
    assert blurred(x).shape == plain(x).shape == (1, 1, 6, 6)
    assert count_parameters(blurred) == count_parameters(plain)  # the blur kernels are fixed
    assert sum(type(m).__name__ == "BlurDownsample" for m in blurred.modules()) == 3


def test_minibatch_stddev_channel_is_the_batch_spread():
    x = torch.tensor([0.0, 2.0]).view(2, 1, 1, 1).expand(2, 3, 2, 2)
    out = MinibatchStdDev()(x)
    # Every feature is 0 in one sample and 2 in the other: standard deviation 1 everywhere.
    assert out.shape == (2, 4, 2, 2) and torch.equal(out[:, :3], x)
    assert torch.allclose(out[:, 3], torch.ones(2, 2, 2))


def _logits(out) -> list[torch.Tensor]:
    """The logits of any discriminator's output (multi-scale: the last feature per scale)."""
    return [scale[-1] for scale in out] if isinstance(out, list) else [out]


@pytest.mark.parametrize("name", ["patch", "pixel", "multiscale"])
def test_minibatch_stddev_changes_the_output_only_when_the_batch_varies(name):
    torch.manual_seed(0)
    # No batch norm: it would tie samples together by itself.
    opts = {"ndf": 4, "norm": "instance", "init": "kaiming", **SMALL[name]}
    x, y = torch.randn(2, 1, 3, 64, 64)
    for stddev in (False, True):
        net = translate.build_discriminator(name, 3, minibatch_stddev=stddev, **opts).eval()
        alone = _logits(net(x))
        same = _logits(net(torch.cat([x, x])))
        mixed = _logits(net(torch.cat([x, y])))
        for a, s, m in zip(alone, same, mixed, strict=True):
            # A batch of identical samples scores each as the sample alone...
            assert torch.allclose(s[0], a[0], atol=1e-6) and torch.allclose(s[1], a[0], atol=1e-6)
            # ...and a varied batch changes x's score only when the option is on.
            changed = (m[0] - a[0]).abs().max().item()
            assert changed > 1e-3 if stddev else changed < 1e-6, (stddev, changed)


@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm_is_torchs_instance_norm(affine):
    norm = translate.networks.layers.norm_layer("instance", 6, affine)
    if affine:
        nn.init.normal_(norm.weight)
        nn.init.normal_(norm.bias)
    x = torch.randn(2, 6, 9, 7) * 3 + 1
    expected = torch.nn.functional.instance_norm(x, weight=norm.weight, bias=norm.bias)
    assert torch.allclose(norm(x), expected, atol=1e-5)
    assert torch.allclose(
        norm(x.contiguous(memory_format=torch.channels_last)), expected, atol=1e-5
    )
    assert set(norm.state_dict()) == ({"weight", "bias"} if affine else set())


def test_instance_norm_gives_an_image_the_same_result_in_any_batch():
    """The converter batches images of one size in channels-last: each output must be
    bit-identical to the image's own, or a rerun of the failed files would differ."""
    norm = translate.networks.layers.norm_layer("instance", 16)
    x = (torch.randn(4, 16, 64, 64) * 3 + 1).contiguous(memory_format=torch.channels_last)
    together = norm(x)
    assert all(torch.equal(together[i : i + 1], norm(x[i : i + 1])) for i in range(4))
    assert together.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("registry", [GENERATORS, DISCRIMINATORS, OBJECTIVES], ids=lambda r: r.kind)
def test_declared_options_read_from_source_are_the_imported_signatures(registry: Registry):
    # A declared name's options come from its constructor's source, read without importing
    # it; once imported, its signature must say the same. (Tests register toys directly.)
    declared = {n: registry._lookup(n)[0] for n in registry.names()}
    declared = {n: target for n, target in declared.items() if isinstance(target, str)}
    assert len(declared) >= 4, registry.names()
    for name, target in declared.items():
        assert parameters(target) == parameters(registry.get(name)), name


def test_a_declared_variant_names_only_its_builders_options():
    registry = Registry("generator")
    with pytest.raises(TypeError, match=r"no option\(s\) \['depth'\]"):
        registry.declare("translate.networks.generators:UnetGenerator", "deep_unet", depth=9)


def test_common_options_are_every_names_and_applied_after_building():
    # init/init_gain are the registry's, not the class's; a variant may set them.
    registry = Registry("generator", "translate.networks.layers:init_weights", init="normal")
    registry.declare("translate.networks.generators:UnetGenerator", "u", num_downs=2)
    registry.declare("translate.networks.generators:UnetGenerator", "ux", init="orthogonal")
    assert registry.options("u")[-1] == "init" and registry.defaults("ux")["init"] == "orthogonal"
    with pytest.raises(ValueError, match="^init must be one of"):
        registry.build("u", ngf=2, init="uniform")
    net = registry.build("ux", ngf=2, num_downs=2)
    weight = net.model.model[0].weight.flatten(1) / 0.02  # orthogonal rows, init's gain
    assert torch.allclose(weight @ weight.T, torch.eye(len(weight)), atol=1e-5)
    # a module trained beside a network (CUT's patch sampler) starts as that network does
    beside = torch.nn.Linear(64, 4)
    registry.finish_like(beside, "ux", {})
    weight = beside.weight / 0.02
    assert torch.allclose(weight @ weight.T, torch.eye(4), atol=1e-5)


def test_a_constructor_taking_a_common_option_must_say_it_initialises_itself():
    registry = Registry("generator", "translate.networks.layers:init_weights", init="normal")
    registry.declare("translate.networks.upscalers:SRVGGNetCompact", "srvgg")
    with pytest.raises(TypeError, match=r"takes \['init'\] itself: declare it with common"):
        registry.options("srvgg")
    registry.declare("translate.networks.upscalers:SRVGGNetCompact", "own", common=False)
    assert registry.defaults("own")["init"] == "kaiming"  # the network's, not the registry's
