"""State dicts in the reference code's layout, written by the tests, loaded back by inference."""

import pickle
import zipfile

import pytest
import torch

from translate.core import torch_file
from translate.models.loading import load_model
from translate.networks import build_generator

RESNET = {"ngf": 4, "n_blocks": 2}
UNET = {"ngf": 4, "num_downs": 5}
# Each case is saved with another of the prefixes that wrappers add to keys.
CASES = [
    ("resnet_9blocks", {**RESNET, "norm": "instance", "dropout": False}, ""),
    (
        "resnet_9blocks",
        {**RESNET, "norm": "instance", "norm_affine": True, "dropout": True},
        "module.",
    ),
    ("resnet_9blocks", {**RESNET, "norm": "batch", "dropout": False}, "_orig_mod."),
    # the CUT reference's default: blurred resampling, its kernels "filt" buffers
    ("resnet_9blocks", {**RESNET, "norm": "instance", "dropout": False, "antialias": True}, ""),
    ("resnet_9blocks", {**RESNET, "norm": "batch", "dropout": True}, "module._orig_mod."),
    ("unet_256", {**UNET, "norm": "batch", "dropout": True}, "_orig_mod.module."),
    ("unet_256", {**UNET, "norm": "instance", "dropout": True}, "module."),
    ("unet_256", {**UNET, "norm": "instance", "norm_affine": True, "dropout": True}, "_orig_mod."),
]


def _reference_net(name, options):
    """Our module with every parameter and buffer randomised, so a misplaced tensor shows."""
    net = build_generator(name, **options)
    with torch.no_grad():
        for key, value in net.state_dict().items():
            if "running_var" in key:
                value.uniform_(0.5, 1.5)
            elif value.is_floating_point():
                value.uniform_(-0.5, 0.5)
    return net.eval()


def _outputs_equal(a, b, size=32):
    x = torch.rand(2, 3, size, size) * 2 - 1
    with torch.no_grad():
        return torch.allclose(a.eval()(x), b.eval()(x), atol=1e-6)


def _rename(key):
    """What a fork that renamed its attributes writes."""
    return key.replace("model.", "layers.").replace("conv_block.", "body.")


def _expected_options(options):
    return {"norm_affine": True, **options} if "norm_affine" in options else options


@pytest.mark.parametrize(("name", "options", "prefix"), CASES)
def test_reference_layout(tmp_path, name, options, prefix):
    net = _reference_net(name, options)
    path = tmp_path / "latest_net_G.pth"
    torch.save({prefix + k: v for k, v in net.state_dict().items()}, path)
    model = load_model(path)
    spec = model.specs["AtoB"]
    assert (spec.name, spec.in_channels, spec.out_channels) == (name, 3, 3)
    assert spec.options == _expected_options(options)
    assert model.preprocess.transforms.size_multiple == net.size_multiple
    assert model.training["source"] == "reference checkpoint"
    assert _outputs_equal(net, model.generators["AtoB"])


@pytest.mark.parametrize(("name", "options", "prefix"), CASES)
def test_renamed_keys_map_by_structure(tmp_path, name, options, prefix):
    net = _reference_net(name, options)
    path = tmp_path / "fork.pth"
    renamed = {prefix + _rename(k): v for k, v in net.state_dict().items()}
    torch.save({"state_dict": renamed}, path)
    model = load_model(path)
    assert model.specs["AtoB"].options["norm"] == options["norm"]
    assert any("mapped by order and shape" in note for note in model.training["notes"])
    assert _outputs_equal(net, model.generators["AtoB"])


def test_instance_norm_without_parameters_is_ambiguous_with_none(tmp_path):
    net = _reference_net("resnet_9blocks", {**RESNET, "norm": "instance"})
    torch.save(net.state_dict(), tmp_path / "g.pth")
    model = load_model(tmp_path / "g.pth")
    assert any("fit instance and none alike" in note for note in model.training["notes"])
    none = load_model(tmp_path / "g.pth", norm="none")
    assert none.specs["AtoB"].options["norm"] == "none"
    assert not _outputs_equal(net, none.generators["AtoB"])


def test_pre_0_4_instance_norm_stats_are_dropped(tmp_path):
    net = _reference_net("resnet_9blocks", {**RESNET, "norm": "instance"})
    state = net.state_dict()
    state["model.2.running_mean"] = torch.zeros(4)
    state["model.2.running_var"] = torch.ones(4)
    torch.save(state, tmp_path / "old.pth")
    model = load_model(tmp_path / "old.pth")
    assert any("dropped running stats" in note for note in model.training["notes"])
    assert _outputs_equal(net, model.generators["AtoB"])


def test_pre_0_4_batch_norm_without_counters(tmp_path):
    net = _reference_net("unet_256", {**UNET, "norm": "batch"})
    state = {k: v for k, v in net.state_dict().items() if "num_batches_tracked" not in k}
    torch.save(state, tmp_path / "old.pth")
    assert _outputs_equal(net, load_model(tmp_path / "old.pth").generators["AtoB"])


def test_reference_norm_none_is_explained(tmp_path):
    net = _reference_net("resnet_9blocks", {**RESNET, "norm": "none"})
    last_conv = "model.19.bias"  # the reference keeps only the output convolution's bias
    state = {k: v for k, v in net.state_dict().items() if k == last_conv or "bias" not in k}
    torch.save(state, tmp_path / "none.pth")
    with pytest.raises(ValueError, match="what the reference writes for --norm none"):
        load_model(tmp_path / "none.pth")


def test_cyclegan_pair_loads_both_directions(tmp_path):
    nets = {d: _reference_net("resnet_9blocks", RESNET) for d in ("A", "B")}
    for d, net in nets.items():
        torch.save(net.state_dict(), tmp_path / f"latest_net_G_{d}.pth")
    model = load_model(tmp_path / "latest_net_G_A.pth")
    assert _outputs_equal(nets["A"], model.generators["AtoB"])
    assert _outputs_equal(nets["B"], model.generators["BtoA"])
    (tmp_path / "latest_net_G_B.pth").unlink()
    assert list(load_model(tmp_path / "latest_net_G_A.pth").generators) == ["AtoB"]


def test_any_torch_save_suffix_and_fp16(tmp_path):
    net = _reference_net("unet_128", {"ngf": 4, "norm": "batch"})
    torch.save({"model": {k: v.half() for k, v in net.state_dict().items()}}, tmp_path / "g.ckpt")
    model = load_model(tmp_path / "g.ckpt")
    assert model.specs["AtoB"].name == "unet_128"
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.allclose(net(x), model.generators["AtoB"](x), atol=5e-2)


def test_arch_override(tmp_path):
    net = _reference_net("resnet_6blocks", {"ngf": 4})
    torch.save(net.state_dict(), tmp_path / "g.pth")
    model = load_model(tmp_path / "g.pth", arch="resnet_6blocks")
    assert model.specs["AtoB"].name == "resnet_6blocks"
    assert "n_blocks" not in model.specs["AtoB"].options
    assert _outputs_equal(net, model.generators["AtoB"])
    with pytest.raises(ValueError, match="fit no resnet_9blocks generator"):
        load_model(tmp_path / "g.pth", arch="resnet_9blocks")
    with pytest.raises(ValueError, match="unknown generator 'bogus'"):
        load_model(tmp_path / "g.pth", arch="bogus")


def test_wrong_shape_names_the_key(tmp_path):
    state = _reference_net("resnet_9blocks", RESNET).state_dict()
    state["model.10.conv_block.5.weight"] = torch.zeros(16, 16, 5, 5)
    torch.save(state, tmp_path / "g.pth")
    with pytest.raises(ValueError, match=r"model\.10\.conv_block\.5\.weight \(16, 16, 5, 5\)"):
        load_model(tmp_path / "g.pth")


def test_truncated_dict_names_the_missing_key(tmp_path):
    state = _reference_net("resnet_9blocks", RESNET).state_dict()
    del state["model.19.bias"]
    torch.save(state, tmp_path / "g.pth")
    with pytest.raises(ValueError, match=r"ends before the expected model\.19\.bias"):
        load_model(tmp_path / "g.pth")


class Payload:
    """Any class: unpickling it would mean running code named by the file."""


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"netG": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match=r"evil.pth: refused: would run code: .*Payload"):
        load_model(tmp_path / "evil.pth")
    torch.save(build_generator("resnet_9blocks", **RESNET), tmp_path / "module.pth")
    with pytest.raises(ValueError, match="module.pth: refused"):
        load_model(tmp_path / "module.pth")


class SystemCall:
    """A pickle that calls os.system when loaded without weights_only."""

    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > pwned.txt",))


def test_code_is_refused_as_code_and_damage_as_damage(tmp_path, monkeypatch):
    """Decided from the pickle's opcodes, not from the installed torch's wording."""
    import pickle

    monkeypatch.chdir(tmp_path)
    torch.save({"netG": SystemCall()}, tmp_path / "zip.pth")  # torch's zip format
    (tmp_path / "plain.pth").write_bytes(pickle.dumps(SystemCall(), protocol=2))  # GLOBAL
    (tmp_path / "stack.pth").write_bytes(pickle.dumps(SystemCall(), protocol=4))  # STACK_GLOBAL
    for name in ("zip.pth", "plain.pth", "stack.pth"):
        with pytest.raises(ValueError, match=rf"{name}: refused: would run code: .*system"):
            load_model(tmp_path / name)
    assert not (tmp_path / "pwned.txt").exists()
    (tmp_path / "cut.pth").write_bytes(pickle.dumps(SystemCall(), protocol=2)[:-3])
    (tmp_path / "junk.pth").write_bytes(b"\x80\x02garbage")
    for name in ("cut.pth", "junk.pth"):
        with pytest.raises(ValueError, match=rf"{name}: not a readable torch checkpoint"):
            load_model(tmp_path / name)


def test_not_a_generator(tmp_path):
    torch.save({"netG_A": {}, "optimizer": {}}, tmp_path / "train.pth")
    with pytest.raises(ValueError, match="top-level keys: netG_A, optimizer"):
        load_model(tmp_path / "train.pth")
    (tmp_path / "broken.pth").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="broken.pth: not a readable torch checkpoint"):
        load_model(tmp_path / "broken.pth")
    torch.jit.save(torch.jit.script(build_generator("resnet_9blocks", **RESNET)), tmp_path / "g.pt")
    with pytest.raises(ValueError, match="g.pt: a TorchScript module"):
        load_model(tmp_path / "g.pt")


def _rewrite_record(path, record, data):
    """``path`` with ``record`` holding ``data`` deflated, as a tampered file carries it."""
    with zipfile.ZipFile(path) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for info, content in entries:
            if info.filename.endswith(f"/{record}"):
                archive.writestr(info.filename, data, zipfile.ZIP_DEFLATED)
            else:
                archive.writestr(info, content)


@pytest.fixture
def no_torch_load(monkeypatch):
    """Fails a test whose file reaches torch.load: refused files must allocate nothing."""

    def reached(*args, **kwargs):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", reached)


def test_a_record_larger_than_its_tensors_is_refused_before_torch_allocates(
    tmp_path, no_torch_load
):
    """The hostile case at small scale: a few KB on disk whose record unpacks to 4 MiB
    while the pickle declares 40 bytes (at 8 GiB, torch.load peaked at 9 GB RSS)."""
    path = tmp_path / "bomb.pth"
    torch.save({"conv.weight": torch.zeros(10)}, path)
    _rewrite_record(path, "data/0", bytes(4 << 20))
    assert path.stat().st_size < 20_000
    with pytest.raises(
        ValueError,
        match=r"^\S*bomb\.pth: refused: damaged or tampered: record data/0 unpacks to "
        r"4,194,304 bytes but its tensors need 40; download or save it again$",
    ):
        load_model(path)


def test_a_pickle_that_unpacks_past_any_state_dict_is_refused_unread(
    tmp_path, no_torch_load, monkeypatch
):
    """data.pkl is read into memory to be scanned: a deflated bomb there is refused by its
    declared size before it is read."""
    monkeypatch.setattr(torch_file, "MAX_PICKLE_BYTES", 1 << 20)
    path = tmp_path / "bomb.pth"
    torch.save({"conv.weight": torch.zeros(10)}, path)
    _rewrite_record(path, "data.pkl", bytes(2 << 20))
    monkeypatch.setattr(zipfile.ZipFile, "read", lambda *a: pytest.fail("data.pkl was read"))
    with pytest.raises(ValueError, match=r"bomb\.pth: refused: .*data\.pkl unpacks to 2,097,152"):
        load_model(path)


def test_a_file_larger_than_the_free_memory_is_refused_before_torch_allocates(
    tmp_path, monkeypatch, no_torch_load
):
    monkeypatch.setattr("translate.core.torch_file.free_memory", lambda device: 1 << 20)
    path = tmp_path / "big.pth"
    torch.save({"conv.weight": torch.zeros(1 << 19)}, path)  # 2 MiB of tensors
    with pytest.raises(
        ValueError, match=r"big\.pth: refused: loading it takes 2\.0 MiB, more than the 1\.0 MiB"
    ):
        load_model(path)


def test_a_legacy_file_declaring_more_than_it_holds_is_refused(tmp_path, no_torch_load):
    """The pre-1.6 format (the reference's 2017 checkpoints): torch allocates each storage's
    declared size before reading it, so a numel raised in the pickle is a bomb too."""
    path = tmp_path / "legacy.pth"
    torch.save({"conv.weight": torch.zeros(10)}, path, _use_new_zipfile_serialization=False)
    numel = pickle.dumps(10, protocol=2)[2:-1]  # BININT1 10
    data = path.read_bytes()
    assert data.count(numel + b"Nt") == 1  # the storage id's numel, then view_metadata None
    tampered = data.replace(numel + b"Nt", pickle.dumps(1 << 31, protocol=2)[2:-1] + b"Nt")
    path.write_bytes(tampered)
    with pytest.raises(
        ValueError, match=r"legacy\.pth: refused: .*its tensors declare 8\.0 GiB but the file"
    ):
        load_model(path)
