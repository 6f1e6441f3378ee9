"""Test-time normalisation: batch norm's running statistics or each image's own (the
reference's default pix2pix test), with dropout on or off; convert, Translator, export."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from translate.cli import main
from translate.conversion.manifest import MANIFEST_NAME
from translate.data.images import read_image, write_image
from translate.inference.export import export_generator
from translate.inference.translator import Translator
from translate.models.model_file import GeneratorSpec, load_generators, save_generators
from translate.networks.eval_mode import EvalMode, set_eval_mode

SPEC = GeneratorSpec(
    "resnet_6blocks", options={"ngf": 4, "n_blocks": 1, "norm": "batch", "dropout": True}
)


def _trained_like(net):
    """Running statistics far from any image's own, so the two modes differ clearly."""
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.fill_(0.5)
            module.running_var.fill_(4.0)
    return net


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "g.safetensors"
    save_generators(path, {"AtoB": (SPEC, _trained_like(SPEC.build()))})
    return path


def _per_image_train_mode(net, x):
    """What the reference computes: train mode, one image at a time, dropout off."""
    net.train()
    for module in net.modules():
        if isinstance(module, torch.nn.Dropout):
            module.eval()
    with torch.no_grad():
        return torch.cat([net(x[i : i + 1]) for i in range(x.shape[0])])


def test_batch_statistics_are_per_image_and_leave_running_statistics_alone(model_path):
    net = load_generators(model_path).generators["AtoB"]
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    expected = _per_image_train_mode(load_generators(model_path).generators["AtoB"], x)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    undo = set_eval_mode(net, EvalMode("batch"))
    with torch.no_grad():
        together, alone = net(x), net(x[1:2])
    assert torch.allclose(together, expected, atol=1e-5)
    assert torch.allclose(alone, together[1:2], atol=1e-5)  # no dependence on batching
    undo()
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    with torch.no_grad():
        running = net(x)
    assert not torch.allclose(running, together, atol=1e-2)


def test_translator_modes_and_the_recorded_default(model_path, tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    kw = {"device": "cpu", "precision": "fp32"}
    running = Translator.load(model_path, **kw)(image)
    batch = Translator.load(model_path, norm_stats="batch", batch_size=1, **kw)
    assert batch.eval_mode == EvalMode("batch", False)
    assert np.array_equal(
        batch(image), Translator.load(model_path, norm_stats="batch", **kw)(image)
    )
    assert np.abs(batch(image).astype(int) - running.astype(int)).max() > 10
    # Loading the running translator again: the batch one did not change the file's module.
    assert np.array_equal(Translator.load(model_path, **kw)(image), running)
    recorded = tmp_path / "recorded.safetensors"
    net = load_generators(model_path).generators["AtoB"]
    save_generators(recorded, {"AtoB": (SPEC, net)}, eval_mode=EvalMode("batch", False))
    assert load_generators(recorded).eval_mode == EvalMode("batch", False)
    assert np.array_equal(Translator.load(recorded, **kw)(image), batch(image))
    assert np.array_equal(Translator.load(recorded, norm_stats="running", **kw)(image), running)
    with pytest.raises(ValueError, match="norm_stats: expected running or batch, got 'train'"):
        Translator.load(model_path, norm_stats="train", **kw)


def test_dropout_masks_are_seeded_per_image(model_path):
    rng = np.random.default_rng(3)
    a, b = (rng.integers(0, 256, (16, 24, 3), dtype=np.uint8) for _ in range(2))
    kw = {"device": "cpu", "precision": "fp32", "norm_stats": "batch"}
    dropout = Translator.load(model_path, dropout=True, batch_size=2, **kw)
    rng_before = torch.get_rng_state()
    together = dropout.translate_batch([a, b])
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's generator untouched
    # Alone (a resumed run's last batch), again, and from a fresh translator: the same bytes.
    assert np.array_equal(dropout(b), together[1]) and np.array_equal(dropout(a), together[0])
    assert np.array_equal(Translator.load(model_path, dropout=True, **kw)(a), together[0])
    assert not np.array_equal(
        Translator.load(model_path, dropout=True, seed=1, **kw)(a), together[0]
    )
    assert not np.array_equal(Translator.load(model_path, dropout=False, **kw)(a), together[0])


def test_convert_with_dropout_reruns_to_the_same_bytes_and_records_the_seed(model_path, tmp_path):
    for i in range(3):
        image = np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        write_image(tmp_path / "in" / f"{i}.png", image)
    runner = CliRunner()
    for out, extra in (("b3", ["--batch-size", "3"]), ("b1", ["--batch-size", "1"])):
        args = ["convert", str(model_path), str(tmp_path / "in"), str(tmp_path / out), *extra]
        result = runner.invoke(main, [*args, "--dropout", "--norm-stats", "batch", "--seed", "7"])
        assert result.exit_code == 0, result.output
        manifest = json.loads((tmp_path / out / MANIFEST_NAME).read_text())
        assert (manifest["options"]["dropout"], manifest["options"]["seed"]) == (True, 7)
    for i in range(3):
        b3, b1 = ((tmp_path / out / f"{i}.png").read_bytes() for out in ("b3", "b1"))
        assert b3 == b1


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_exports_take_the_eval_mode(model_path, tmp_path, fmt):
    if fmt == "onnx":
        onnxruntime = pytest.importorskip("onnxruntime")
    model = load_generators(model_path)
    out = export_generator(model, tmp_path / f"g.{fmt}", fmt, norm_stats="batch")
    x = torch.rand(2, 3, 20, 28) * 2 - 1
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    else:
        got = torch.jit.load(str(out))(x)
    converter = Translator(model, device="cpu", precision="fp32", value_range=(-1, 1))
    batch = Translator(
        model, device="cpu", precision="fp32", value_range=(-1, 1), norm_stats="batch"
    )
    assert (got - batch(x)).abs().max() <= 1e-4
    assert (got - converter(x)).abs().max() > 1e-2
    if fmt == "onnx":
        with pytest.raises(ValueError, match="dropout at test time exports to TorchScript only"):
            export_generator(model, tmp_path / "d.onnx", "onnx", dropout=True)
    else:  # checked against PyTorch with the same dropout masks
        export_generator(model, tmp_path / "d.pt", "torchscript", dropout=True)


def test_convert_and_info_options(model_path, tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    write_image(tmp_path / "in" / "a.png", image)
    runner = CliRunner()
    for mode in ("running", "batch"):
        args = ["convert", str(model_path), str(tmp_path / "in"), str(tmp_path / mode)]
        result = runner.invoke(
            main, [*args, "--norm-stats", mode, "--no-dropout", "--device", "cpu"]
        )
        assert result.exit_code == 0, result.output
    running, batch = (read_image(tmp_path / m / "a.png").astype(int) for m in ("running", "batch"))
    expected = Translator.load(model_path, device="cpu", norm_stats="batch")(image)
    assert np.abs(batch - expected).max() <= 1 and np.abs(batch - running).max() > 10
    result = runner.invoke(main, ["info", str(model_path), "--json"])
    assert json.loads(result.output)["eval_mode"] == {"norm_stats": "running", "dropout": False}
    result = runner.invoke(
        main,
        [
            "convert",
            str(model_path),
            str(tmp_path / "in"),
            str(tmp_path / "x"),
            "--norm-stats",
            "eval",
        ],
    )
    assert result.exit_code == 2 and "--norm-stats" in result.output
