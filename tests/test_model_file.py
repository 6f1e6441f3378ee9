import json
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from translate.core.atomic import atomic_path
from translate.data.transforms import Preprocess
from translate.models.loading import load_model
from translate.models.model_file import (
    FORMAT,
    GeneratorSpec,
    InputSpec,
    load_generators,
    read_metadata,
    save_generators,
)


def _spec() -> GeneratorSpec:
    return GeneratorSpec("unet_128", 1, 3, {"ngf": 4, "num_downs": 3, "norm": "batch"})


def test_roundtrip_rebuilds_the_same_generators(tmp_path):
    spec_a, spec_b = _spec(), GeneratorSpec("resnet_6blocks", 3, 1, {"ngf": 4, "n_blocks": 1})
    g_a, g_b = spec_a.build().eval(), spec_b.build().eval()
    g_a.model.model[0].weight.data.fill_(0.5)  # not the init: proves weights travel
    path = tmp_path / "g.safetensors"
    save_generators(
        path,
        {"AtoB": (spec_a, g_a), "BtoA": (spec_b, g_b)},
        preprocess=InputSpec(Preprocess(mode="crop", crop_size=16), input_channels=1),
        training={"model": "cyclegan", "steps": 7},
    )
    loaded = load_generators(path)
    assert set(loaded.generators) == {"AtoB", "BtoA"}
    assert loaded.specs["AtoB"] == spec_a
    assert loaded.preprocess.transforms.crop_size == 16 and loaded.preprocess.input_channels == 1
    assert loaded.training["steps"] == 7
    x = torch.randn(1, 1, 16, 16)
    assert torch.equal(loaded.generators["AtoB"](x), g_a(x))
    assert not loaded.generators["AtoB"].training
    meta = read_metadata(path)
    assert meta.version == 2 and meta.specs["BtoA"].name == "resnet_6blocks"


def test_fp16_storage_halves_the_file_and_loads_as_fp32(tmp_path):
    spec = _spec()
    net = spec.build().eval()
    save_generators(tmp_path / "32.safetensors", {"AtoB": (spec, net)})
    save_generators(tmp_path / "16.safetensors", {"AtoB": (spec, net)}, dtype=torch.float16)
    size32 = (tmp_path / "32.safetensors").stat().st_size
    size16 = (tmp_path / "16.safetensors").stat().st_size
    assert size16 < 0.6 * size32
    loaded = load_generators(tmp_path / "16.safetensors").generators["AtoB"]
    assert next(loaded.parameters()).dtype == torch.float32
    x = torch.randn(1, 1, 16, 16)
    assert torch.allclose(loaded(x), net(x), atol=1e-2)


def test_unknown_direction_and_foreign_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="direction"):
        save_generators(tmp_path / "x.safetensors", {"AB": (_spec(), _spec().build())})
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.safetensors"):
        load_generators(junk)


def test_atomic_path_leaves_nothing_when_the_write_fails(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_atomic_outputs_get_the_usual_file_mode(tmp_path):
    from translate.core.atomic import atomic_write_text

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic_write_text(tmp_path / "atomic.txt", "x")
    assert (tmp_path / "atomic.txt").stat().st_mode == plain.stat().st_mode


def _raw_metadata(path):
    with safe_open(str(path), framework="pt") as f:
        return f.metadata()


def test_files_are_written_as_version_2_and_newer_ones_are_named(tmp_path):
    spec = _spec()
    path = tmp_path / "g.safetensors"
    save_generators(path, {"AtoB": (spec, spec.build())}, InputSpec(input_channels=1))
    raw = _raw_metadata(path)
    assert raw["format"] == FORMAT == "translate.generator/2"
    assert json.loads(raw["preprocess"]) == {
        "transforms": Preprocess(mode="none").to_dict(),
        "input_channels": 1,
        "output_channels": 3,
    }
    for version in (1, 9):  # 1: before preprocess held channel counts; 9: a later release
        fmt = f"translate.generator/{version}"
        save_file(load_file(str(path)), str(path), {**raw, "format": fmt})
        with pytest.raises(ValueError, match=rf"g\.safetensors: format: '{fmt}' is not"):
            read_metadata(path)


def _tiny_file(tmp_path):
    spec = GeneratorSpec("unet_128", 3, 3, {"ngf": 4, "num_downs": 3})
    path = tmp_path / "g.safetensors"
    save_generators(path, {"AtoB": (spec, spec.build())}, training={"steps": 1})
    return path, load_file(str(path)), _raw_metadata(path)


def _generators(raw, **changes):
    entry = json.loads(raw["generators"])["AtoB"]
    return json.dumps({"AtoB": {**entry, "options": {**entry["options"], **changes}}})


def _without(raw, key):
    return {k: v for k, v in raw.items() if k != key}


MALFORMED = {
    **{
        f"missing {key}": (lambda raw, key=key: _without(raw, key), f"{key}: missing")
        for key in ("generators", "preprocess", "training", "eval_mode", "counts")
    },
    "missing size_multiple": (  # every file written stores all of a spec
        lambda raw: {
            **raw,
            "generators": json.dumps(
                {"AtoB": _without(json.loads(raw["generators"])["AtoB"], "size_multiple")}
            ),
        },
        r"generators\.AtoB: missing key\(s\) \['size_multiple'\]",
    ),
    "generators as a list": (
        lambda raw: {**raw, "generators": json.dumps([json.loads(raw["generators"])["AtoB"]])},
        "generators: expected an object of direction -> generator",
    ),
    "ngf as a string": (
        lambda raw: {**raw, "generators": _generators(raw, ngf="4")},
        r"generators\.AtoB\.options: ngf: expected int .*got '4'",
    ),
    "bad JSON": (lambda raw: {**raw, "preprocess": "{not json"}, "preprocess: not valid JSON"),
    "unknown generator": (
        lambda raw: {**raw, "generators": raw["generators"].replace("unet_128", "unet_9")},
        r"generators\.AtoB\.name: unknown generator 'unet_9'",
    ),
    "num_downs past any image": (  # built, it nests past Python's recursion limit
        lambda raw: {**raw, "generators": _generators(raw, num_downs=10000)},
        r"generators\.AtoB: cannot build unet_128 .*: num_downs: expected 1 to 16 .*got 10000",
    ),
    "JSON nested past the parser": (
        lambda raw: {**raw, "generators": "[" * 100_000 + "]" * 100_000},
        "generators: JSON nested too deeply to be metadata",
    ),
    "eval_mode nested past the parser": (
        lambda raw: {**raw, "eval_mode": "{" + '"a":{' * 100_000 + "}" * 100_001},
        "eval_mode: JSON nested too deeply to be metadata",
    ),
    "bad channel count": (
        lambda raw: {**raw, "preprocess": json.dumps({"input_channels": 0})},
        r"preprocess\.input_channels: expected a positive integer, got 0",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_metadata_is_one_line_naming_file_and_field(tmp_path, case):
    path, tensors, raw = _tiny_file(tmp_path)
    change, message = MALFORMED[case]
    save_file(tensors, str(path), change(raw))
    with pytest.raises(ValueError, match=rf"^{tmp_path}/g\.safetensors: {message}") as error:
        load_generators(path)
    assert "\n" not in str(error.value)


def test_two_saves_of_one_model_are_byte_identical_with_sorted_metadata(tmp_path):
    spec = _spec()
    net = spec.build()
    saved = []
    for name in ("a", "b", "c"):
        path = tmp_path / f"{name}.safetensors"
        save_generators(path, {"AtoB": (spec, net)}, training={"steps": 3, "model": "pix2pix"})
        saved.append(path.read_bytes())
    assert saved[0] == saved[1] == saved[2]
    length = int.from_bytes(saved[0][:8], "little")
    metadata = json.loads(saved[0][8 : 8 + length])["__metadata__"]
    assert list(metadata) == sorted(metadata) == sorted(_raw_metadata(tmp_path / "a.safetensors"))
    loaded = load_generators(tmp_path / "a.safetensors").generators["AtoB"]
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_metadata_is_checked_against_the_weights_before_anything_is_built(tmp_path):
    """A few bytes of weights with metadata asking for ngf 4000 (65 GB as built) are refused
    from the header; building first would fail to allocate instead."""
    path, _, raw = _tiny_file(tmp_path)
    save_file(
        {"AtoB.x": torch.zeros(1)},
        str(path),
        {**raw, "generators": _generators(raw, ngf=4000, num_downs=5)},
    )
    assert path.stat().st_size < 1000
    with pytest.raises(
        ValueError,
        match=r"g\.safetensors: generators\.AtoB: the metadata .* does not fit the weights: "
        r"the file has no AtoB\.model\.model\.0\.weight \(4000, 3, 4, 4\)",
    ):
        load_generators(path)
    # The same check names a tensor of the wrong shape, and a stray one.
    path, tensors, raw = _tiny_file(tmp_path)
    save_file(tensors, str(path), {**raw, "generators": _generators(raw, ngf=8)})
    with pytest.raises(
        ValueError,
        match=r"AtoB\.model\.model\.0\.weight is \(4, 3, 4, 4\) in the file, \(8, 3, 4, 4\) "
        "expected",
    ):
        load_generators(path)
    save_file({**tensors, "AtoB.extra": torch.zeros(1)}, str(path), raw)
    with pytest.raises(ValueError, match=r"AtoB\.extra is not part of that network"):
        load_generators(path)


def test_a_torch_zip_named_safetensors_is_named(tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "g.safetensors")
    with pytest.raises(
        ValueError, match=r"g\.safetensors: not a readable safetensors file .*zip archive"
    ):
        load_model(tmp_path / "g.safetensors")


def _compact_file(tmp_path):
    spec = GeneratorSpec.declared("srvgg_compact", 3, 3, {"num_feat": 4, "num_conv": 1})
    net = spec.build().eval()
    path = tmp_path / "sr.safetensors"
    save_generators(path, {"AtoB": (spec, net)})
    return path, net


def test_one_upstream_layout_generator_is_stored_unprefixed_as_version_3(tmp_path):
    path, net = _compact_file(tmp_path)
    raw = _raw_metadata(path)
    assert raw["format"] == "translate.generator/3"
    assert set(load_file(str(path))) == set(net.state_dict())  # body.0.weight, no AtoB.
    # Such a network beside another (or any file naming two) keeps the prefixes: version 2.
    other = GeneratorSpec("resnet_6blocks", 3, 3, {"ngf": 4, "n_blocks": 1})
    both = tmp_path / "both.safetensors"
    save_generators(
        both, {"AtoB": (read_metadata(path).specs["AtoB"], net), "BtoA": (other, other.build())}
    )
    assert _raw_metadata(both)["format"] == FORMAT
    assert "AtoB.body.0.weight" in load_file(str(both))
    assert set(load_generators(both).generators) == {"AtoB", "BtoA"}


def test_a_version_3_file_with_two_generators_is_refused_and_prefixed_ones_still_load(tmp_path):
    path, net = _compact_file(tmp_path)
    raw = _raw_metadata(path)
    entry = json.loads(raw["generators"])["AtoB"]
    save_file(
        load_file(str(path)),
        str(path),
        {**raw, "generators": json.dumps({"AtoB": entry, "BtoA": entry})},
    )
    with pytest.raises(
        ValueError, match=r"sr\.safetensors: generators: translate.generator/3 holds one generator"
    ):
        load_generators(path)
    # The same network written as version 2 (prefixed) loads as before.
    old = tmp_path / "old.safetensors"
    prefixed = {f"AtoB.{k}": v for k, v in net.state_dict().items()}
    save_file(prefixed, str(old), {**raw, "format": "translate.generator/2"})
    x = torch.rand(1, 3, 4, 4)
    assert torch.equal(load_generators(old).generators["AtoB"](x), net(x))


def test_loading_a_model_file_fills_no_meta_tensor() -> None:
    """The shape check builds each network on the meta device; a random fill of a meta
    tensor would import torch._dynamo, which took 1.5 s of every `translate convert`."""
    code = (
        "import sys; from translate.models.loading import load_model; "
        "load_model('demo'); load_model('demo-sr'); print('torch._dynamo' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
