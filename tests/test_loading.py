import pytest
import torch

from translate.data.transforms import Preprocess
from translate.models import loading
from translate.models.loading import load_model
from translate.models.model_file import GeneratorSpec, InputSpec, save_generators

SPEC = GeneratorSpec("resnet_6blocks", options={"ngf": 4, "n_blocks": 1})
PRE = InputSpec(Preprocess(mode="none", size_multiple=4))


def _save(path, net=None):
    net = net or SPEC.build()
    save_generators(path, {"AtoB": (SPEC, net)}, preprocess=PRE)
    return net


def _same_output(a, b):
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


def test_generator_file(tmp_path):
    net = _save(tmp_path / "g.safetensors")
    model = load_model(tmp_path / "g.safetensors")
    assert model.specs["AtoB"] == SPEC
    assert model.preprocess == PRE
    assert _same_output(net, model.generators["AtoB"])


def test_run_directory_prefers_best(tmp_path):
    latest = _save(tmp_path / "generator_latest.safetensors")
    assert _same_output(load_model(tmp_path).generators["AtoB"], latest)
    best = _save(tmp_path / "generator_best.safetensors")
    assert not _same_output(best, latest)
    assert _same_output(load_model(str(tmp_path)).generators["AtoB"], best)


def test_run_directory_without_generator(tmp_path):
    with pytest.raises(FileNotFoundError, match="generator_best.safetensors and generator_latest"):
        load_model(tmp_path)


def test_bundled_name(tmp_path, monkeypatch):
    net = _save(tmp_path / "demo.safetensors")
    monkeypatch.setattr(loading, "bundled_path", lambda name: tmp_path / f"{name}.safetensors")
    assert _same_output(load_model("demo").generators["AtoB"], net)


def test_missing_bundled_file_is_named(monkeypatch):
    monkeypatch.setitem(loading.BUNDLED, "absent", "absent.safetensors")
    with pytest.raises(FileNotFoundError, match="bundled model 'absent' is not installed"):
        load_model("absent")


def test_unknown_name_lists_bundled():
    with pytest.raises(FileNotFoundError, match="bundled models: demo"):
        load_model("zebra2unicorn")  # horse2zebra is a pretrained name now


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.safetensors: no such file"):
        load_model(tmp_path / "missing.safetensors")


def test_unknown_kind_is_named(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match=r"model\.onnx: unknown model kind '\.onnx'"):
        load_model(tmp_path / "model.onnx")


def test_not_a_generator_file(tmp_path):
    (tmp_path / "g.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="g.safetensors: not a readable safetensors file"):
        load_model(tmp_path / "g.safetensors")


def test_overrides_refused_for_generator_file(tmp_path):
    _save(tmp_path / "g.safetensors")
    with pytest.raises(ValueError, match="only apply to reference checkpoints"):
        load_model(tmp_path / "g.safetensors", arch="unet_256")
